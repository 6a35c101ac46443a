// A real, certified OpenID Provider (panva/oidc-provider) for civio's login tests.
//
// It plays a SPID/CIE OIDC identity provider: the `fiscal_number` claim is `TINIT-<login>`
// and is released only when asked for with the `claims` request parameter (as SPID OIDC
// providers do), names and birth date come with the `profile` scope, and the `acr` of the ID
// token is the SPID level the relying party asked for in `acr_values`.
//
// Configuration comes from the environment (CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, PORT);
// the provider listens on 127.0.0.1, prints one JSON line `{"issuer": …}` once it accepts
// connections, and exits when its standard input closes, so it never outlives the tests.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import { Provider } from 'oidc-provider';

const SPID_LEVELS = [
  'https://www.spid.gov.it/SpidL1',
  'https://www.spid.gov.it/SpidL2',
  'https://www.spid.gov.it/SpidL3',
];
const DEFAULT_LEVEL = SPID_LEVELS[1];

const required = (name) => {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is required`);
  }
  return value;
};

const clientId = required('CLIENT_ID');
const clientSecret = required('CLIENT_SECRET');
const redirectUri = required('REDIRECT_URI');
const port = Number(process.env.PORT || 0);

// A fresh signing key per run: a token from another run can never verify.
const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  use: 'sig',
  alg: 'RS256',
};

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const server = createServer();

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    acrValues: SPID_LEVELS,
    claims: {
      openid: ['sub'],
      profile: ['given_name', 'family_name', 'birthdate'],
      email: ['email', 'email_verified'],
      fiscal_number: null,
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
    },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // Any login is an account; the login id is the citizen's fiscal code.
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            fiscal_number: `TINIT-${sub}`,
            given_name: 'Maria',
            family_name: 'Rossi',
            birthdate: '1980-01-31',
            email: `${sub.toLowerCase()}@example.org`,
            email_verified: true,
          };
        },
      };
    },
  });

  // The provider's own login and consent pages: plain HTML forms, as a browser sees them.
  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!match) {
      await next();
      return;
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { uid, prompt, params, session } = details;
    if (ctx.method === 'GET') {
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'html';
      if (prompt.name === 'login') {
        ctx.body = page('Sign-in', `<form method="post" action="/interaction/${escapeHtml(uid)}">
<input type="hidden" name="prompt" value="login">
<input type="text" name="login" required>
<input type="password" name="password" required>
<button type="submit">Sign-in</button></form>`);
      } else {
        ctx.body = page('Authorize', `<form method="post" action="/interaction/${escapeHtml(uid)}">
<input type="hidden" name="prompt" value="consent">
<button type="submit">Continue</button></form>`);
      }
      return;
    }
    if (ctx.method !== 'POST') {
      ctx.throw(405);
    }
    const form = await readForm(ctx.req);
    let result;
    if (form.get('prompt') === 'login' && prompt.name === 'login') {
      const requested = String(params.acr_values || '').split(' ').filter(Boolean);
      const acr = requested.find((value) => SPID_LEVELS.includes(value)) || DEFAULT_LEVEL;
      result = { login: { accountId: form.get('login'), acr, amr: ['pwd'] } };
    } else if (form.get('prompt') === 'consent' && prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) {
        grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
      }
      if (prompt.details.missingOIDCClaims) {
        grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      ctx.throw(400, 'unexpected prompt');
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: prompt.name === 'consent',
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
