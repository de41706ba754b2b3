/**
 * The plugins this process has loaded and not yet let go of: the real paths of the files each
 * read (its manifest and wasm) and of the directories its guest may write. The checks on a
 * plugin's own directory find other plugins by their Component.toml only, while `loadComponent`
 * takes a manifest file of any name (probe H49: a plugin loaded from `A/data/b.toml` had its
 * grants rewritten by A's guest); and a plugin unpacked into a loaded plugin's writable directory
 * after that plugin was checked is found by no walk. Within one process, these are found here.
 */
import path from 'node:path'

import { ConfigError } from '../errors.js'
import { quoted } from '../util/quoted.js'
import { isInside, realPath } from './paths.js'
import type { Manifest } from './schema.js'

/** What one loaded plugin reads and may write, as real paths. */
interface Claim {
  manifest: string
  wasm: string
  writable: readonly string[]
}

const claims = new Set<Claim>()

/**
 * Claims the manifest's files and writable directories for as long as its plugin is loaded, after
 * refusing, as a ConfigError, a plugin whose files lie in another loaded plugin's writable
 * directory, or whose writable directories hold another's files (another load of the same
 * manifest is the same plugin). Returns the release.
 */
export function claimPluginPaths(manifest: Manifest): () => void {
  const writes = manifest.permissions.filesystem.write ?? []
  const claim: Claim = {
    manifest: realPath(manifest.file),
    wasm: realPath(path.resolve(manifest.dir, manifest.component.wasm)),
    writable: writes.map((written) => realPath(path.resolve(manifest.dir, written))),
  }
  const holding = (plugin: Claim) => (dir: string) =>
    isInside(dir, plugin.manifest) || isInside(dir, plugin.wasm)
  const refuse = (what: string) =>
    new ConfigError(
      `${manifest.file}: ${what}, whose guest could rewrite that plugin's grants or code for its next load: ` +
        'give each plugin a directory of its own',
      { path: 'permissions.filesystem.write' },
    )
  for (const other of claims) {
    if (other.manifest === claim.manifest) continue
    const loaded = `the plugin loaded from ${quoted(other.manifest)}`
    const reaching = other.writable.find(holding(claim))
    if (reaching !== undefined) {
      throw refuse(`this plugin's files lie in a directory ${loaded} may write (${quoted(reaching)})`)
    }
    const reached = claim.writable.find(holding(other))
    if (reached !== undefined) {
      throw refuse(`this plugin may write a directory holding the files of ${loaded} (${quoted(reached)})`)
    }
  }
  claims.add(claim)
  return () => claims.delete(claim)
}
