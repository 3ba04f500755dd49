// Where a broker's time went during a run, by its own Prometheus histograms (GET /metrics, served to loopback callers):
// of the exchanges it answered, the share that took longer than a bound, as the broker timed them, and the share whose
// durable audit append alone (the wait for the writer thread's commit and its fsync) took longer. The bench's fixed-rate
// run prints both beside its p99, to say whether the tail is the append or the rest.

/** Cumulative counts of a histogram by bucket bound (`le`), summed over its labels. */
type Buckets = ReadonlyMap<string, number>;

export interface BrokerTimings {
  readonly exchange: Buckets;
  readonly auditAppend: Buckets;
}

function buckets(exposition: string, name: string): Buckets {
  const counts = new Map<string, number>();
  const pattern = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\} (\\d+)$`);
  for (const line of exposition.split('\n')) {
    const match = pattern.exec(line);
    if (match !== null) counts.set(match[1] as string, (counts.get(match[1] as string) ?? 0) + Number(match[2]));
  }
  return counts;
}

export async function brokerTimings(url: string): Promise<BrokerTimings> {
  const response = await fetch(new URL('/metrics', url));
  if (!response.ok) throw new Error(`GET /metrics: ${response.status}`);
  const exposition = await response.text();
  return { exchange: buckets(exposition, 'keyway_exchange_duration_seconds'), auditAppend: buckets(exposition, 'keyway_audit_append_duration_seconds') };
}

/** Of what was observed between `before` and `after`, the share over `seconds` (a bucket bound of the histogram). */
export function shareOver(before: Buckets, after: Buckets, seconds: number): number {
  const since = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const all = since('+Inf');
  if (!after.has(String(seconds))) throw new Error(`no histogram bucket at ${seconds} s`);
  return all === 0 ? 0 : (all - since(String(seconds))) / all;
}
