"""Push alerts: the citizen's devices (``installations``), the providers that reach them
(a gorush-compatible gateway for apns/fcmv1, Web Push with VAPID for browsers), and the
delivery job (``delivery``) that plugs into the shared notification loop."""
