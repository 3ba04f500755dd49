/**
 * One call of `call` per group of `items` (by `groupOf`: a shard), the groups at once; the results in the order of
 * `items`. Rejects when one call does, though others may have done their part.
 */
export async function perGroup<Item, Group, Result>(
  items: readonly Item[],
  groupOf: (item: Item) => Group,
  call: (group: Group, items: Item[]) => Promise<readonly Result[]>,
): Promise<Result[]> {
  const results: Result[] = [];
  const groups = Map.groupBy(items.keys(), (index) => groupOf(items[index] as Item));
  await Promise.all(
    [...groups].map(async ([group, indexes]) => {
      const answered = await call(
        group,
        indexes.map((index) => items[index] as Item),
      );
      for (const [at, index] of indexes.entries()) results[index] = answered[at] as Result;
    }),
  );
  return results;
}
