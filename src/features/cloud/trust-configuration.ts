import { KeywayError } from '../../core/errors/keyway-error.ts';
import { escapeRegExp } from '../../core/escape-reg-exp.ts';
import { defaultCloudSubject } from '../../core/policy/decide.ts';
import type { CloudProvider } from '../../core/policy/cloud-profile.ts';
import type { Policy } from '../../core/policy/policy.ts';
import { codePoint, type Template } from '../../core/policy/template.ts';
import { subjectsOverlap, type Piece } from '../../core/policy/lint/lint-policies.ts';

/** A policy's sub that one of the formats printed cannot carry exactly: nothing is printed, rather than a trust that reads otherwise. */
export class CloudTrustError extends KeywayError {
  override readonly name = 'CloudTrustError';
  readonly code = 'cloud_trust_unprintable';
}

/** One policy's part in a cloud's trust: the sub its tokens carry (exact, or a template), and what it grants. */
interface Trusted {
  readonly policy: string;
  /** The sub exactly as keyway issues it (`{{` and `}}` already single braces), or a template's source, as written. */
  readonly sub: string;
  /** Literal text and placeholders in order: an exact sub is one text. */
  readonly shape: Template['shape'];
  /** The characters no placed value may hold (Template.delimiters); none for an exact sub. */
  readonly delimiters: ReadonlySet<string>;
  /** A template with placeholders: the cloud can only match it with a pattern, or not at all (Entra). */
  readonly templated: boolean;
  readonly identities: readonly string[];
  readonly sessionTags: boolean;
  readonly home: string | undefined;
}

/**
 * Control characters, unpaired surrogates, line and paragraph separators: no format printed here
 * carries them all exactly (a newline ends a Terraform comment, a CEL '…' literal and a shell word
 * cannot hold one, NUL no command line can).
 */
const UNPRINTABLE = /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}]/u;

function trustedOf(policies: readonly Policy[], provider: CloudProvider): Trusted[] {
  return policies.flatMap((policy) => {
    const cloud = policy.grant?.cloud;
    if (policy.effect !== 'allow' || cloud?.provider !== provider) return [];
    const template = policy.grant?.subject;
    const shape = template?.shape ?? [{ text: defaultCloudSubject(policy.id) }];
    const templated = shape.some((part) => 'placeholder' in part);
    const sub = template !== undefined && templated ? template.source : shape.map((part) => ('text' in part ? part.text : '')).join('');
    const unprintable = UNPRINTABLE.exec(template?.source ?? sub)?.[0];
    if (unprintable !== undefined) {
      throw new CloudTrustError(
        `${policy.id}: grant.subject holds ${codePoint(unprintable)}, which the trust's formats cannot all carry exactly; no trust is printed for it`,
      );
    }
    return [
      {
        policy: policy.id,
        sub,
        shape,
        delimiters: template?.delimiters ?? new Set<string>(),
        templated,
        identities: cloud.identities,
        sessionTags: cloud.sessionTags.size > 0,
        home: cloud.home,
      },
    ];
  });
}

const quoteShell = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;
/**
 * A Terraform (HCL) quoted string: JSON's escapes, less \b and \f, which HCL lacks, and `${` and
 * `%{` written `$${` and `%%{`, so Terraform reads them as text, never as an interpolation or directive.
 */
const hcl = (text: string) =>
  JSON.stringify(text).replace(/\\(?:u[0-9a-fA-F]{4}|.)|[$%]\{/g, (token) => {
    if (token === '\\b') return '\\u0008';
    if (token === '\\f') return '\\u000c';
    return token.endsWith('{') ? `${token[0]}${token}` : token;
  });
const name = (text: string) => text.replace(/[^A-Za-z0-9_]/g, '_');
/**
 * Text IAM reads as itself in a condition value: `$`, which begins a policy variable in any string
 * condition, as the policy variable `${$}`; in `StringLike` also its wildcards `*` and `?`, as `${*}` and `${?}`.
 */
const iamText = (text: string, like: boolean) => text.replace(like ? /[$*?]/g : /\$/g, (char) => `\${${char}}`);
/** A template's sub as an AWS `StringLike` pattern: its text as itself, each placeholder `*`, any run of characters. */
const likePattern = (entry: Trusted) => entry.shape.map((part) => ('text' in part ? iamText(part.text, true) : '*')).join('');
/** A CEL string literal: '…' with `\` and `'` escaped (what UNPRINTABLE refuses never reaches one). */
const celString = (text: string) => `'${text.replace(/[\\']/g, '\\$&')}'`;
/**
 * The same as an anchored RE2 expression (CEL `matches`), each placeholder a run, empty too, without any
 * delimiter of the template: the characters keyway never places there (`:` and `/` only when its text holds them).
 * A run may be empty because keyway places an empty claim as it is (`environment: ''` renders
 * `repo:acme/app:environment:`), as mintedPieces and AWS's `*` take it: a condition that wanted one character or more
 * would refuse at Google a token keyway's policy granted.
 */
const celPattern = (entry: Trusted) => {
  const excluded = [...entry.delimiters].map((char) => char.replace(/[\\\][^-]/g, '\\$&')).join('');
  // No delimiter (a sub that is one placeholder): any run, as RE2 has no empty class to negate.
  const value = excluded === '' ? '.*' : `[^${excluded}]*`;
  return `^${entry.shape.map((part) => ('text' in part ? escapeRegExp(part.text) : value)).join('')}$`;
};

/** The subs keyway mints for `entry`, as pieces: a placeholder any run without the template's delimiters (`:` and `/` too, unless its text holds them). */
const mintedPieces = (entry: Trusted): Piece[] =>
  entry.shape.flatMap((part): Piece[] => ('text' in part ? Array.from(part.text, (char) => ({ char })) : [{ except: entry.delimiters }]));
/** What AWS's `StringLike` pattern of a templated sub takes, as pieces: its text, and for each placeholder any run at all. */
const awsLikePieces = (entry: Trusted): Piece[] =>
  entry.shape.flatMap((part): Piece[] => ('text' in part ? Array.from(part.text, (char) => ({ char })) : [{ except: new Set<string>() }]));

/**
 * Refuses a role's trust whose `StringLike` pattern (a templated sub: AWS's `*` takes any character, its template's
 * delimiters too, which keyway never places in a value) takes a sub keyway mints for a policy that does not grant that role: its tokens would assume the
 * role. keyway tells them apart (lint's cloud-subject-collision); no IAM condition can.
 */
function refuseWiderAtAws(role: string, granting: readonly Trusted[], trusted: readonly Trusted[]): void {
  for (const entry of granting.filter((candidate) => candidate.templated)) {
    const other = trusted.find((candidate) => !candidate.identities.includes(role) && subjectsOverlap(awsLikePieces(entry), mintedPieces(candidate)));
    if (other !== undefined) {
      throw new CloudTrustError(
        `${entry.policy}: its sub ${entry.sub}, a StringLike pattern at AWS (whose * also takes : and /), would admit the tokens of ${other.policy}, ` +
          `which does not grant ${role}; no trust is printed: give it the default sub (policy:<id>) or a sub whose text sets it apart`,
      );
    }
  }
}

/**
 * The exact trust to create in a cloud for the keyway policies that grant it: the OIDC provider
 * with keyway's issuer and the cloud's audience, and the narrow condition on `sub` (and `aud`),
 * as Terraform and as the cloud's CLI commands. Nothing wider than the policies grant.
 */
export function renderTrust(provider: CloudProvider, issuer: string, policies: readonly Policy[]): string {
  const trusted = trustedOf(policies, provider);
  if (trusted.length === 0) return `# no allow policy grants a ${provider} token (grant.cloud.provider: ${provider})\n`;
  if (provider === 'aws') return renderAws(issuer, trusted);
  if (provider === 'gcp') return renderGcp(issuer, trusted);
  return renderAzure(issuer, trusted);
}

function renderAws(issuer: string, trusted: readonly Trusted[]): string {
  const host = issuer.replace(/^https:\/\//, '');
  if (host.includes('&{')) throw new CloudTrustError(`the issuer ${issuer} holds &{, which Terraform's aws_iam_policy_document reads as \${`);
  const roles = [...new Set(trusted.flatMap((entry) => entry.identities))];
  const terraform = [
    '# Terraform',
    'resource "aws_iam_openid_connect_provider" "keyway" {',
    `  url            = ${hcl(issuer)}`,
    '  client_id_list = ["sts.amazonaws.com"]',
    '}',
  ];
  const cli = ['# AWS CLI', `aws iam create-open-id-connect-provider --url ${quoteShell(issuer)} --client-id-list sts.amazonaws.com`];
  for (const role of roles) {
    const granting = trusted.filter((entry) => entry.identities.includes(role));
    const value = (entry: Trusted) => (entry.templated ? likePattern(entry) : iamText(entry.sub, false));
    // aws_iam_policy_document turns every &{ into ${ (its spelling of a policy variable in Terraform), and has no escape for &{ itself.
    const ampersand = granting.find((entry) => value(entry).includes('&{'));
    if (ampersand !== undefined) {
      throw new CloudTrustError(
        `${ampersand.policy}: grant.subject holds &{, which Terraform's aws_iam_policy_document reads as \${, the start of a policy variable; no trust is printed`,
      );
    }
    refuseWiderAtAws(role, granting, trusted);
    const exact = granting.filter((entry) => !entry.templated).map(value);
    const patterns = granting.filter((entry) => entry.templated).map(value);
    const actions = ['sts:AssumeRoleWithWebIdentity', ...(granting.some((entry) => entry.sessionTags) ? ['sts:TagSession'] : [])];
    const account = /^arn:[^:]+:iam::(\d{12}):/.exec(role)?.[1] ?? 'ACCOUNT';
    const federated = `arn:aws:iam::${account}:oidc-provider/${host}`;
    const statements = [
      ...(exact.length === 0 ? [] : [{ test: 'StringEquals', values: exact }]),
      ...(patterns.length === 0 ? [] : [{ test: 'StringLike', values: patterns }]),
    ];
    const roleName =
      role
        .slice(role.indexOf(':role/') + ':role/'.length)
        .split('/')
        .at(-1) ?? role;
    terraform.push('', `# ${role}: trusted for keyway policies ${granting.map((entry) => entry.policy).join(', ')}`);
    if (patterns.length > 0) {
      terraform.push("# StringLike: AWS's * also matches : and /, so a templated sub is wider here than in keyway; prefer the default policy:<id> sub");
    }
    terraform.push(`data "aws_iam_policy_document" "keyway_${name(roleName)}" {`);
    for (const statement of statements) {
      terraform.push(
        '  statement {',
        `    actions = [${actions.map(hcl).join(', ')}]`,
        '    principals {',
        '      type        = "Federated"',
        '      identifiers = [aws_iam_openid_connect_provider.keyway.arn]',
        '    }',
        '    condition {',
        '      test     = "StringEquals"',
        `      variable = ${hcl(`${host}:aud`)}`,
        '      values   = ["sts.amazonaws.com"]',
        '    }',
        '    condition {',
        `      test     = ${hcl(statement.test)}`,
        `      variable = ${hcl(`${host}:sub`)}`,
        `      values   = [${statement.values.map(hcl).join(', ')}]`,
        '    }',
        '  }',
      );
    }
    terraform.push('}', `# aws_iam_role for ${roleName}: assume_role_policy = data.aws_iam_policy_document.keyway_${name(roleName)}.json`);
    const document = {
      Version: '2012-10-17',
      Statement: statements.map((statement) => ({
        Effect: 'Allow',
        Principal: { Federated: federated },
        Action: actions,
        Condition: {
          StringEquals: { [`${host}:aud`]: 'sts.amazonaws.com', ...(statement.test === 'StringEquals' ? { [`${host}:sub`]: statement.values } : {}) },
          ...(statement.test === 'StringLike' ? { StringLike: { [`${host}:sub`]: statement.values } } : {}),
        },
      })),
    };
    cli.push(`aws iam update-assume-role-policy --role-name ${quoteShell(roleName)} --policy-document ${quoteShell(JSON.stringify(document))}`);
  }
  return `${[...terraform, '', ...cli].join('\n')}\n`;
}

function renderGcp(issuer: string, trusted: readonly Trusted[]): string {
  const lines: string[] = [];
  for (const home of [...new Set(trusted.map((entry) => entry.home ?? ''))]) {
    const [, project = '', , , , pool = '', , providerId = ''] = home.split('/');
    const here = trusted.filter((entry) => entry.home === home);
    const exact = here.filter((entry) => !entry.templated).map((entry) => celString(entry.sub));
    const condition = [
      ...(exact.length === 0 ? [] : [`assertion.sub in [${exact.join(', ')}]`]),
      ...here.filter((entry) => entry.templated).map((entry) => `assertion.sub.matches(${celString(celPattern(entry))})`),
    ].join(' || ');
    const principal = (sub: string) => `principal://iam.googleapis.com/projects/${project}/locations/global/workloadIdentityPools/${pool}/subject/${sub}`;
    const bindings = here.flatMap((entry) => entry.identities.map((account) => ({ account, entry })));
    lines.push(
      `# ${home}: trusted for keyway policies ${here.map((entry) => entry.policy).join(', ')}`,
      '# Terraform',
      `resource "google_iam_workload_identity_pool_provider" "keyway_${name(providerId)}" {`,
      `  project                            = ${hcl(project)}`,
      `  workload_identity_pool_id          = ${hcl(pool)}`,
      `  workload_identity_pool_provider_id = ${hcl(providerId)}`,
      '  attribute_mapping                  = { "google.subject" = "assertion.sub" }',
      `  attribute_condition                = ${hcl(condition)}`,
      `  oidc { issuer_uri = ${hcl(issuer)} }`,
      '}',
    );
    for (const [i, { account, entry }] of bindings.entries()) {
      if (entry.templated) {
        lines.push(`# ${account} for ${entry.policy}: its sub is a template (${entry.sub}); bind each subject it renders to, as below`);
        continue;
      }
      lines.push(
        `resource "google_service_account_iam_member" "keyway_${name(providerId)}_${i}" {`,
        `  service_account_id = ${hcl(`projects/-/serviceAccounts/${account}`)}`,
        '  role               = "roles/iam.workloadIdentityUser"',
        `  member             = ${hcl(principal(entry.sub))}`,
        '}',
      );
    }
    lines.push(
      '',
      '# gcloud',
      `gcloud iam workload-identity-pools providers create-oidc ${quoteShell(providerId)} --project=${quoteShell(project)} --location=global ` +
        `--workload-identity-pool=${quoteShell(pool)} --issuer-uri=${quoteShell(issuer)} --attribute-mapping=google.subject=assertion.sub ` +
        `--attribute-condition=${quoteShell(condition)}`,
      ...bindings
        .filter(({ entry }) => !entry.templated)
        .map(
          ({ account, entry }) =>
            `gcloud iam service-accounts add-iam-policy-binding ${quoteShell(account)} --role=roles/iam.workloadIdentityUser --member=${quoteShell(principal(entry.sub))}`,
        ),
      '',
    );
  }
  return `${lines.join('\n')}`;
}

function renderAzure(issuer: string, trusted: readonly Trusted[]): string {
  const terraform = ['# Terraform'];
  const cli = ['# Azure CLI'];
  for (const [i, entry] of trusted.entries()) {
    if (entry.templated) {
      const note = `# ${entry.policy}: Entra matches sub exactly and its sub is a template (${entry.sub}); give the policy a sub without placeholders`;
      terraform.push(note);
      cli.push(note);
      continue;
    }
    const credential = `keyway-${entry.policy.replace(/[^A-Za-z0-9-]/g, '-')}`.slice(0, 120);
    for (const [j, clientId] of entry.identities.entries()) {
      terraform.push(
        `data "azuread_application" "keyway_${i}_${j}" { client_id = ${hcl(clientId)} }`,
        `resource "azuread_application_federated_identity_credential" "keyway_${i}_${j}" {`,
        `  application_id = data.azuread_application.keyway_${i}_${j}.id`,
        `  display_name   = ${hcl(credential)}`,
        `  issuer         = ${hcl(issuer)}`,
        `  subject        = ${hcl(entry.sub)}`,
        '  audiences      = ["api://AzureADTokenExchange"]',
        '}',
      );
      const parameters = { name: credential, issuer, subject: entry.sub, audiences: ['api://AzureADTokenExchange'] };
      cli.push(`az ad app federated-credential create --id ${quoteShell(clientId)} --parameters ${quoteShell(JSON.stringify(parameters))}`);
    }
  }
  return `${[...terraform, '', ...cli].join('\n')}\n`;
}
