"""Messages: accept (PA API), process (pipeline), and report status to the sender."""
