// A real browser signs in through latchkey's hosted pages: Debian's Chromium, headless, driven
// by playwright-core. The user enrols TOTP first (over the API), then opens the web app of
// web_app.mjs, signs in with password and TOTP code, allows the app on the consent page and
// lands back on the app, which redeems the code. Then the interactive docs sign in through
// the same session with the code flow and PKCE, and the user signs out. Every page is
// screenshotted into SHOTS_DIR. Exits non-zero at the first thing that is not as expected.
//
// Usage: node browser_signin.mjs ISSUER APP_URL USERNAME PASSWORD SETUP_SECRET SHOTS_DIR
// (SETUP_SECRET: the secret of client `setup`, which may use the password grant with scope
// `account`, for the TOTP enrolment.)
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';

const [issuer, appUrl, username, password, setupSecret, shots] = process.argv.slice(2);

// RFC 6238 with latchkey's parameters (SHA-1, 6 digits, 30 s), `step` steps from now.
function totp(base32, step = 0) {
  const bits = [...base32.replace(/=+$/, '')]
    .map((c) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(c).toString(2).padStart(5, '0'))
    .join('');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[19] & 0xf;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

async function api(path, { token, form, json }) {
  const res = await fetch(`${issuer}${path}`, {
    method: 'POST',
    headers: token
      ? { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
      : { authorization: `Basic ${Buffer.from(`setup:${setupSecret}`).toString('base64')}` },
    body: form ? new URLSearchParams(form) : JSON.stringify(json),
  });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}

// TOTP enrolment over the account API.
const { access_token: setupToken } = await api('/oauth/token', {
  form: { grant_type: 'password', username, password, scope: 'account' },
});
const { secret } = await api('/account/mfa/totp', { token: setupToken, json: { password } });
await api('/account/mfa/totp/confirm', { token: setupToken, json: { code: totp(secret) } });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png` });
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`browser: page error: ${err.message}`));

  // The app sends the browser to latchkey's sign-in page.
  await page.goto(appUrl);
  assert.ok(page.url().startsWith(`${issuer}/oauth/authorize`), page.url());
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(`${password}!`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await shot(page, 'sign-in-error');
  await page.getByLabel('Password').fill(password);
  await shot(page, 'sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();

  // The second factor: the next step's code (the enrolment used this step's, and a code
  // is accepted once).
  await page.getByLabel('Authentication code').waitFor();
  await shot(page, 'second-factor');
  await page.getByLabel('Authentication code').fill(totp(secret, 1));
  await page.getByRole('button', { name: 'Verify', exact: true }).click();

  // Consent: the app is not first-party.
  await page.getByRole('button', { name: 'Allow' }).waitFor();
  await shot(page, 'consent');
  await page.getByRole('button', { name: 'Allow' }).click();

  // Back on the app, which redeemed the code and read userinfo with the access token.
  await page.waitForURL(`${appUrl}/callback?**`);
  assert.equal(await page.locator('body').innerText(), `Signed in as ${username}`);
  console.log('browser: sign-in with password, TOTP step and consent, code redeemed by the app: ok');

  // The interactive docs: Authorize with the code flow; the browser session signs in
  // without a prompt (the docs client is first-party), PKCE and the code are Swagger UI's.
  await page.goto(`${issuer}/docs`);
  await page.locator('button.authorize').first().click();
  const codeFlow = page.locator('.auth-container', { hasText: 'CodeFlow' });
  await codeFlow.locator('button', { hasText: 'Authorize' }).waitFor();
  await codeFlow.screenshot({ path: `${shots}/docs-authorize.png` });
  // The sign-in runs in a window of its own that closes itself; the dialog then offers
  // Logout.
  await codeFlow.locator('button', { hasText: 'Authorize' }).click();
  await codeFlow.locator('button', { hasText: 'Logout' }).waitFor();
  const auth = await page.evaluate('ui.authSelectors.authorized().toJS()');
  const me = await fetch(`${issuer}/account/me`, {
    headers: { authorization: `Bearer ${auth.CodeFlow.token.access_token}` },
  });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).username, username);
  console.log('browser: the docs signed in with the code flow and PKCE, and their token reads /account/me: ok');

  // An unknown client gets latchkey's error page, never a redirect.
  const unknown = await page.goto(
    `${issuer}/oauth/authorize?response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F`,
  );
  assert.equal(unknown.status(), 400);
  assert.ok(page.url().startsWith(issuer));
  await shot(page, 'error');

  await page.goto(`${issuer}/oauth/logout`);
  await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
  await shot(page, 'signed-out');
  await page.goto(appUrl);
  assert.ok(page.url().startsWith(`${issuer}/oauth/authorize`), 'signed out: the app asks again');
  await page.getByLabel('Username').waitFor();
  console.log('browser: error page, sign-out: ok');
} finally {
  await browser.close();
}
