// The layer rules of src/ (docs/architecture.md), checked by `npm run layers` in `npm test`. Imports point down only:
//   runtimes/, cli/   entry points: wire everything; nothing imports them, and they never import each other
//   config/           settings read from the environment, composed from each feature's own reader
//   http/             routes and middleware: the one place a reason becomes a status
//   storage/          the SQL stores and the data directory's files
//   features/         GitHub, alerts, metrics, the dev issuer: core's ports implemented
//   core/             transport-free: plain values and ports in, outcomes out
// Type-only imports count: a type is a dependency too.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'core-imports-only-core',
      comment: 'core/ is transport- and runtime-free: it imports core/ and npm packages, never a feature, http, storage, config or a runtime',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'core-has-no-runtime',
      comment: 'core/ runs on Node and in workerd alike: no node: built-ins, no better-sqlite3, no cloudflare: modules',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'features-import-core-and-features',
      severity: 'error',
      from: { path: '^src/features/' },
      to: { path: '^src/', pathNot: '^src/(core|features)/' },
    },
    {
      name: 'http-imports-core-features-http',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: '^src/', pathNot: '^src/(core|features|http)/' },
    },
    {
      name: 'storage-imports-core-features-storage',
      severity: 'error',
      from: { path: '^src/storage/' },
      to: { path: '^src/', pathNot: '^src/(core|features|storage)/' },
    },
    {
      name: 'config-imports-core-features-config',
      severity: 'error',
      from: { path: '^src/config/' },
      to: { path: '^src/', pathNot: '^src/(core|features|config)/' },
    },
    {
      name: 'nothing-imports-an-entry-point',
      comment: 'runtimes/ and cli/ are entry points: only they import themselves (tests, bench and scripts are not cruised)',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(runtimes|cli)/' },
      to: { path: '^src/(runtimes|cli)/' },
    },
    {
      name: 'runtimes-never-import-the-cli',
      severity: 'error',
      from: { path: '^src/runtimes/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'cli-imports-neither-runtimes-nor-http',
      comment: "the CLI reads the data directory through storage/ and config/, never through a running broker's wiring or routes",
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/(runtimes|http)/' },
    },
    {
      name: 'each-runtime-alone',
      comment: "Node and Workers share runtimes/create-broker.ts, never each other's adapters",
      severity: 'error',
      from: { path: '^src/runtimes/(node|workers)/' },
      to: { path: '^src/runtimes/(node|workers)/', pathNot: '^src/runtimes/$1/' },
    },
    {
      name: 'package-entry-is-core-and-http',
      comment: 'src/index.ts (the npm package) exports verifyAccessToken and keywayAuth: it reaches core/ and http/ only',
      severity: 'error',
      from: { path: '^src/index\\.ts$' },
      to: { path: '^src/', pathNot: '^src/(core|http)/' },
    },
    {
      name: 'no-folder-cycles',
      comment: 'no folder imports, through any chain, a folder that imports it',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-unresolvable-imports',
      severity: 'error',
      from: { path: '^src/' },
      // wrangler's build step writes build/policies.json, which the Worker entry imports; workerd provides cloudflare:workers.
      to: { couldNotResolve: true, pathNot: ['build/policies\\.json$', '^cloudflare:'] },
    },
  ],
  options: {
    // TypeScript 7 is native and has no compiler API for dependency-cruiser to call: swc parses instead (.ts and .tsx),
    // and reports type-only imports as dependencies too.
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
    // Packages resolve through their package.json "exports", as Node, vitest and wrangler resolve them.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default', 'types'], mainFields: ['module', 'main', 'types'] },
  },
};
