import type { Child } from 'hono/jsx';
import { inert } from '../../core/inert-text.ts';

export function Layout(props: { title: string; who?: string; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{props.title} · keyway audit</title>
        <link rel="stylesheet" href="/audit/style.css" />
      </head>
      <body>
        <header>
          <h1>
            <a href="/audit">keyway audit log</a>
          </h1>
          {props.who === undefined ? null : (
            <nav>
              <a href="/audit">events</a> · <a href="/audit/inventory">inventory</a>
            </nav>
          )}
          {props.who === undefined ? null : (
            <div>
              signed in as <strong data-testid="who">{inert(props.who)}</strong>{' '}
              <form method="post" action="/audit/sign-out">
                <button type="submit">sign out</button>
              </form>
            </div>
          )}
        </header>
        <main>{props.children}</main>
      </body>
    </html>
  );
}
