// A real OpenID provider (the certified `oidc-provider` package) on loopback, for Lanyard's
// single sign-on tests. Its development login and consent pages accept any login name and
// any password; the account's claims come from a JSON file that is read again on every
// sign-in, so that a test can change a person's groups at the provider between two sign-ins.
//
// Usage: node server.mjs
//   OIDC_PORT           port to listen on (0: any free port; the port is printed)
//   OIDC_CLIENT_ID      the client Lanyard is registered as
//   OIDC_CLIENT_SECRET  its secret (client_secret_basic)
//   OIDC_REDIRECT_URI   Lanyard's {LANYARD_PUBLIC_URL}/auth/oidc/callback
//   OIDC_USERS_FILE     {"<login>": {"email": "...", "email_verified": true, "groups": ["eng"]}}
// Prints `listening <issuer>` on stdout once it serves.

import http from 'node:http';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT ?? '0');
const clientId = process.env.OIDC_CLIENT_ID ?? 'lanyard';
const clientSecret = process.env.OIDC_CLIENT_SECRET ?? 'lanyard-test-secret';
const redirectUri = process.env.OIDC_REDIRECT_URI;
const usersFile = process.env.OIDC_USERS_FILE;
if (!redirectUri || !usersFile) {
  console.error('OIDC_REDIRECT_URI and OIDC_USERS_FILE are required');
  process.exit(2);
}

function readUsers() {
  try {
    return JSON.parse(fs.readFileSync(usersFile, 'utf8'));
  } catch {
    return {};
  }
}

const server = http.createServer();
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
    // The claims of the scopes asked for go into the ID token itself (Lanyard reads no userinfo).
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    pkce: { required: () => true },
    cookies: { keys: ['lanyard-test-provider-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx, id) {
      const person = readUsers()[id];
      if (!person) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: person.email,
            email_verified: person.email_verified ?? true,
            name: person.name ?? id,
            groups: person.groups ?? [],
          };
        },
      };
    },
  });
  // Plain http on loopback: the provider must not insist on secure cookies.
  provider.proxy = true;
  server.on('request', provider.callback());
  process.stdout.write(`listening ${issuer}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
