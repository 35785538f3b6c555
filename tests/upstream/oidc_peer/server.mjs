// An independent OpenID Provider for the broker's tests: panva/oidc-provider (npm), unmodified.
//
//   node server.mjs CONFIG.json
//
// CONFIG.json (written by tests/upstream/conftest.py):
//   { "jwks": {"keys": [private JWKs]}, "clients": [oidc-provider client metadata],
//     "accounts": {"<login>": {claims}}, "pkce_optional": ["<client_id>"], "cookie_key": "...",
//     "port": 0 }
//
// Listens on a random loopback port (or "port", to come back under the same issuer) and prints one line, {"issuer": "http://127.0.0.1:PORT"},
// when ready. The development interactions (a login form that takes any password, then a consent
// form) stand in for the provider's sign-in pages.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const conf = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = conf.accounts || {};
const pkceOptional = new Set(conf.pkce_optional || []);

const server = createServer();
server.listen(conf.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: conf.clients,
    jwks: conf.jwks,
    cookies: { keys: [conf.cookie_key] },
    pkce: { required: (ctx, client) => !pkceOptional.has(client.clientId) },
    features: { devInteractions: { enabled: true } },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups', 'realm_access', 'https://aws.example.com/groups', 'hd'],
    },
    // Put the scopes' claims in the ID token itself (as Entra ID, Okta and Keycloak do for groups).
    conformIdTokenClaims: false,
    findAccount: async (ctx, id) => ({
      accountId: id,
      async claims() {
        return { sub: id, ...(accounts[id] || {}) };
      },
    }),
    ttl: {
      AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 600, Grant: 600,
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
