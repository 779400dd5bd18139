// The admin key: typed into the sign-in form and kept in sessionStorage only (gone when
// the tab closes; never in localStorage, a cookie or the URL).

import { h } from './dom.js';

const STORAGE_KEY = 'livecam.adminKey';

export function getKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function setKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function clearKey() {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage disabled: nothing was kept either.
  }
}

/**
 * Shows the sign-in form in `root`. `verify(key)` resolves when the server accepts the
 * key and rejects with an ApiError otherwise; only an accepted key is stored.
 */
export function mountSignIn(root, { message = '', verify, onSignedIn }) {
  const error = h('p', { class: 'form-error', id: 'sign-in-error', role: 'alert' });
  const input = h('input', {
    id: 'admin-key',
    name: 'admin-key',
    type: 'password',
    required: true,
    autocomplete: 'current-password',
    spellcheck: 'false',
    autocapitalize: 'off',
    'aria-describedby': 'admin-key-help sign-in-error',
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  // method=post: should the script ever not run, the key still never lands in a URL.
  const form = h(
    'form',
    { class: 'sign-in', id: 'sign-in-form', method: 'post', 'aria-labelledby': 'sign-in-title' },
    h('h2', { id: 'sign-in-title' }, 'Or with the admin key'),
    // For password managers, which file a password under a user name.
    h('input', {
      type: 'text',
      name: 'username',
      value: 'admin',
      autocomplete: 'username',
      readonly: true,
      tabindex: '-1',
      'aria-hidden': 'true',
      class: 'visually-hidden',
    }),
    h('label', { for: 'admin-key' }, 'Admin key'),
    input,
    h(
      'p',
      { class: 'hint', id: 'admin-key-help' },
      'The key the server printed on first start (data/admin.key). It is kept in this tab only.',
    ),
    error,
    submit,
  );
  const showError = (text) => {
    error.textContent = text;
    error.hidden = !text;
  };
  showError(message);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      showError('Enter the admin key.');
      input.focus();
      return;
    }
    submit.disabled = true;
    showError('');
    try {
      await verify(key);
    } catch (err) {
      submit.disabled = false;
      showError(
        err && err.status === 401
          ? 'That admin key was not accepted. Check it and try again.'
          : `Could not sign in: ${err && err.message ? err.message : err}`,
      );
      input.select();
      input.focus();
      return;
    }
    setKey(key);
    input.value = '';
    onSignedIn();
  });

  root.replaceChildren(form);
  input.focus();
  return { destroy() { form.remove(); } };
}
