// A real OpenID provider for the tests: node-oidc-provider (OpenID Certified), run as it
// comes, with its own login and consent pages (its development interactions), back-channel
// logout and RP-initiated logout. The test gives everything on standard input as one JSON
// object and reads "listening <port>" on standard output:
//
//   {"port": 0, "issuer": "http://127.0.0.1:PORT", "jwks": {"keys": [private JWK]},
//    "clients": [client metadata], "accountsFile": "/path/accounts.json"}
//
// The accounts file ({"<login>": {claims}}) is read at every lookup, so a test can take a
// person out of a group between two logins. An account's claims go to the ID token's scopes
// as usual (groups under the "groups" scope). Used by tests/identity/oidc_provider.py only;
// never part of the product.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

async function readInput() {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return JSON.parse(text);
}

const input = await readInput();

const configuration = {
  clients: input.clients,
  jwks: input.jwks,
  cookies: { keys: [input.cookieKey || 'videobooth-tests-cookie-key'] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Scope claims in the ID token too, as Keycloak and most agencies' providers do; the
  // server also reads the userinfo endpoint when the ID token lacks the groups.
  conformIdTokenClaims: input.conformIdTokenClaims ?? false,
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true, methods: ['S256'] },
  ttl: { IdToken: input.idTokenSeconds || 3600 },
  async findAccount(ctx, id) {
    const claims = JSON.parse(readFileSync(input.accountsFile, 'utf8'))[id];
    if (!claims) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...claims };
      },
    };
  },
};

const provider = new Provider(input.issuer, configuration);
// Behind the tests' own front (which may alter tokens): trust its X-Forwarded-* headers.
provider.proxy = true;
provider.on('server_error', (ctx, error) => {
  console.error('server_error', error);
});
provider.on('backchannel.error', (ctx, error, client) => {
  console.error('backchannel.error', client.clientId, error.message);
});
provider.on('backchannel.success', (ctx, client) => {
  console.error('backchannel.success', client.clientId);
});

const server = http.createServer(provider.callback());
server.listen(input.port || 0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
