import { PAGE_SESSION_MAX_SECONDS } from '../../core/revocation/page-session.ts';
import { Layout } from './layout.tsx';

/** The way in: a keyway access token for this broker with scope audit:read, obtained by exchanging a person's identity token. */
export function SignInForm(props: { issuer: string; problem?: string }) {
  return (
    <Layout title="Sign in">
      <h2>Sign in</h2>
      {props.problem === undefined ? null : (
        <p class="notice" data-testid="problem">
          {props.problem}
        </p>
      )}
      <p>
        Paste a keyway access token whose audience is <code>{props.issuer}</code> and whose scope includes <code>audit:read</code>. Get one the way pipelines
        get theirs: exchange your own identity token at <code>{props.issuer}/token</code> under a policy that grants auditors <code>audit:read</code>. The token
        is not kept: signing in starts a session for this page alone, at most {PAGE_SESSION_MAX_SECONDS / 3600} hours and never past the token's expiry, which
        signing out ends.
      </p>
      <form method="post" action="/audit/sign-in">
        <textarea name="token" required autocomplete="off" spellcheck={false} aria-label="access token"></textarea>
        <p>
          <button type="submit">Sign in</button>
        </p>
      </form>
    </Layout>
  );
}
