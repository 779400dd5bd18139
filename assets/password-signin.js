// Sign-in with a user name and password (POST /api/auth/login): the server sets an
// HttpOnly session cookie, so nothing secret is kept by this page. Viewers see only the
// cameras an admin granted them.

import { request } from './api.js';
import { h } from './dom.js';

/**
 * The user name + password form in `root`; `onSignedIn()` runs once the server accepted
 * them (the session cookie is then set).
 */
export function mountPasswordSignIn(root, { onSignedIn }) {
  const error = h('p', { class: 'form-error', id: 'password-error', role: 'alert', hidden: true });
  const username = h('input', {
    id: 'username',
    name: 'username',
    required: true,
    autocomplete: 'username',
    autocapitalize: 'off',
    spellcheck: 'false',
  });
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    required: true,
    autocomplete: 'current-password',
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'sign-in', id: 'password-form', method: 'post', 'aria-labelledby': 'password-title' },
    h('h1', { id: 'password-title' }, 'livecam'),
    h('label', { for: 'username' }, 'User name'),
    username,
    h('label', { for: 'password' }, 'Password'),
    password,
    error,
    submit,
  );
  const showError = (text) => {
    error.textContent = text;
    error.hidden = !text;
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    showError('');
    try {
      // `key: ''`: no admin key header, and a 401 is this form's to show.
      const body = { username: username.value.trim(), password: password.value };
      await request('/api/auth/login', { method: 'POST', body, key: '' }); // 204 + cookie
    } catch (err) {
      submit.disabled = false;
      if (err && err.status === 401) showError('Wrong user name or password.');
      else if (err && err.status === 429) showError(`Too many attempts: ${err.message}`);
      else showError(`Could not sign in: ${err && err.message ? err.message : err}`);
      password.select();
      password.focus();
      return;
    }
    password.value = '';
    onSignedIn();
  });

  root.replaceChildren(form);
  username.focus();
  return { destroy() { form.remove(); } };
}
