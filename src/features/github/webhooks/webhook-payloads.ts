import * as v from 'valibot';

/**
 * What keyway reads of each webhook event it handles, with the types GitHub's payloads give those fields
 * (docs.github.com, "Webhook events and payloads"). Loose: every other field, and any GitHub adds, is let through
 * unread. A field GitHub may leave out or null, or that an older GitHub Enterprise Server lacks, stays optional, and
 * its handler decides what its absence means. The messages say what a field must be and never echo what it held.
 */
const isObject = (input: unknown): input is Record<string, unknown> => typeof input === 'object' && input !== null && !Array.isArray(input);
/** A JSON object (never an array, which valibot's object schemas would take) holding at least `entries`. */
const object = <const Entries extends v.ObjectEntries>(entries: Entries) =>
  v.pipe(v.custom<Record<string, unknown>>(isObject, 'an object'), v.looseObject(entries, 'an object'));
const text = v.string('a string');
/** GitHub's ids and numbers: positive whole numbers, within what a JSON number holds exactly. */
const id = v.pipe(v.number('a number'), v.safeInteger('a positive whole number'), v.minValue(1, 'a positive whole number'));
/** A commit as GitHub names it: SHA-1, or SHA-256 in a repository that uses it. */
const commitSha = v.pipe(text, v.regex(/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/, 'a commit SHA (40 or 64 lowercase hex digits)'));
const account = object({ login: text });

const pullRequest = object({
  action: text,
  /** On `edited`: what changed; `base` when the base branch did. */
  changes: v.optional(object({ base: v.optional(object({})) })),
  pull_request: object({
    number: id,
    /** Null for a deleted account. */
    user: v.nullish(account),
    base: object({ sha: commitSha }),
    /** `repo` is null when the head's repository (a fork) was deleted. */
    head: object({ sha: commitSha, repo: v.nullable(object({ id })) }),
  }),
  repository: object({ id, name: text, owner: account, private: v.optional(v.boolean('a boolean')) }),
  sender: v.nullish(account),
});

const push = object({
  ref: text,
  deleted: v.boolean('a boolean'),
  repository: object({ id, name: text, full_name: text, owner: v.nullish(account), default_branch: text }),
});

/** An installation's account: a user or an organisation (`login`), or an enterprise (`slug`); null when GitHub names none. */
const installation = object({ installation: object({ account: v.nullish(object({ login: v.optional(text), slug: v.optional(text) })) }) });

/**
 * An account the App is installed on was renamed (`renamed`, the only action GitHub documents): its login (a user, an
 * organisation) or slug (an enterprise) now, and before in `changes`.
 */
const installationTarget = object({
  action: text,
  account: object({ login: v.optional(text), slug: v.optional(text) }),
  changes: v.optional(object({ login: v.optional(object({ from: text })), slug: v.optional(object({ from: text })) })),
});

/**
 * A workflow's repository: its id, and its REST URL (`url`), whose host says which GitHub the delivery is of. Optional
 * only as the other fields GitHub may leave out are: every GitHub sends it.
 */
const workflowRepository = object({ id, url: v.optional(text) });

/** `run_attempt` is left out by older GitHub Enterprise Server releases; `check_run_url` too. */
const workflowJob = object({
  action: text,
  repository: workflowRepository,
  workflow_job: object({ id, run_id: id, run_attempt: v.optional(id), check_run_url: v.nullish(text) }),
});

const workflowRun = object({
  action: text,
  repository: workflowRepository,
  workflow_run: object({ id, run_attempt: v.optional(id) }),
});

const PAYLOADS = {
  ping: object({}),
  pull_request: pullRequest,
  push,
  installation,
  installation_repositories: installation,
  installation_target: installationTarget,
  workflow_job: workflowJob,
  workflow_run: workflowRun,
};

export type HandledEvent = keyof typeof PAYLOADS;
export type WebhookPayload<Name extends HandledEvent> = v.InferOutput<(typeof PAYLOADS)[Name]>;

/** Whether keyway handles the event of this name (an own key: `constructor` or `__proto__` is no event keyway knows). */
export function isHandledEvent(name: string): name is HandledEvent {
  return Object.hasOwn(PAYLOADS, name);
}

/**
 * The payload of an event keyway handles, as its handler reads it; or what is wrong with it: the path of the first field
 * that is missing or not of the type GitHub sends (`pull_request.base.sha`), never the value it held.
 */
export function readWebhookPayload<Name extends HandledEvent>(
  name: Name,
  payload: unknown,
): { readonly ok: true; readonly payload: WebhookPayload<Name> } | { readonly ok: false; readonly problem: string } {
  const parsed = v.safeParse(PAYLOADS[name], payload, { abortEarly: true });
  if (parsed.success) return { ok: true, payload: parsed.output };
  const [issue] = parsed.issues;
  const path = v.getDotPath(issue);
  if (path === null) return { ok: false, problem: `the ${name} payload is not a JSON object` };
  // An object's issue with no input is a key it lacks; any other names what the field must be.
  if (issue.input === undefined && issue.type === 'loose_object') return { ok: false, problem: `the ${name} payload has no ${path}` };
  return { ok: false, problem: `the ${name} payload's ${path} is not ${issue.message}` };
}
