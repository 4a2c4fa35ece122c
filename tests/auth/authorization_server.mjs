// A real OAuth 2.1 / OpenID authorization server for the tests: oidc-provider (a certified
// OpenID provider), installed by .ci/run into .ci/oidc. Started by tests/auth/oidc.py:
//
//   node authorization_server.mjs <path of oidc-provider's lib/index.js>
//
// It listens on two free loopback ports: the authorization server the MCP server trusts, and an
// impostor with the same signing keys but another issuer (for the wrong-issuer test). It prints
// one JSON line {"issuer", "impostor"} when both listen. A line "rotate" on stdin replaces the
// signing key (the old one stays published, as in a real rotation) and answers {"rotated": kid}.
//
// Resource indicators (RFC 8707): a token is bound to the `resource` the client asks for, and is a
// JWT (RFC 9068) unless the client is `opaque-agent` (then it is opaque, for introspection).
// Access tokens carry `crm_consumer`, the Apideck consumer the MCP server maps the caller to:
// `consumer-<client id>` for client credentials, `consumer-<account>` for a signed-in user, none
// for the client `unmapped`.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.argv[2]).href);

const SCOPES = 'crm:read crm:write crm:delete';
const SECRET = 'test-secret-of-a-confidential-client';

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function machine(clientId) {
  return {
    client_id: clientId,
    client_secret: SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };
}

const clients = [
  ...['agent-a', 'agent-b', 'unmapped', 'short-lived', 'opaque-agent'].map(machine),
  machine('crm-mcp'), // the MCP server itself, for introspection
  {
    client_id: 'desktop', // a public client: authorization code with PKCE
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  },
];

function configuration(keys) {
  return {
    clients,
    jwks: { keys },
    cookies: { keys: ['cookie-signing-key-for-tests'] },
    scopes: ['openid'],
    features: {
      devInteractions: { enabled: true }, // a plain HTML login and consent form the tests post to
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: SCOPES,
          audience: resource,
          accessTokenTTL: client.clientId === 'short-lived' ? 1 : 300,
          accessTokenFormat: client.clientId === 'opaque-agent' ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => {
      const owner = token.accountId || (token.clientId !== 'unmapped' ? token.clientId : undefined);
      return owner ? { crm_consumer: `consumer-${owner}` } : undefined;
    },
  };
}

function listen(handler) {
  const server = createServer((req, res) => handler()(req, res));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

let keys = [signingKey()];
let provider;
let impostor;
const port = await listen(() => provider.callback());
const impostorPort = await listen(() => impostor.callback());
const issuer = `http://127.0.0.1:${port}`;
const impostorIssuer = `http://127.0.0.1:${impostorPort}`;
provider = new Provider(issuer, configuration(keys));
impostor = new Provider(impostorIssuer, configuration(keys));
process.stdout.write(`${JSON.stringify({ issuer, impostor: impostorIssuer })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'rotate') {
    keys = [signingKey(), ...keys]; // the first key signs; the old ones stay published
    provider = new Provider(issuer, configuration(keys));
    process.stdout.write(`${JSON.stringify({ rotated: keys[0].kid })}\n`);
  }
});
process.stdin.on('end', () => process.exit(0)); // the test process went away
