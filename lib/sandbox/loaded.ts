/**
 * The plugins this process has loaded and not yet let go of: the real paths of the files each
 * read (its manifest and wasm) and of the directories its guest may write. The checks on a
 * plugin's own directory find other plugins by their Component.toml only, while `loadComponent`
 * takes a manifest file of any name (probe H49: a plugin loaded from `A/data/b.toml` had its
 * grants rewritten by A's guest); and a plugin unpacked into a loaded plugin's writable directory
 * after that plugin was checked is found by no walk. Within one process, these are found here.
 * The claims are the addon's (`plugin_claims.rs`), one set for every thread of the process: a
 * plugin loaded in a worker thread is seen from the main thread (probe H51).
 */
import path from 'node:path'

import { ConfigError } from '../errors.js'
import { claimPluginPaths as claimNative, releasePluginClaim } from '../native.js'
import { quoted } from '../util/quoted.js'
import { realPath } from './paths.js'
import type { Manifest } from './schema.js'

/**
 * Claims the manifest's files and writable directories for as long as its plugin is loaded, after
 * refusing, as a ConfigError, a plugin whose files lie in another loaded plugin's writable
 * directory, or whose writable directories hold another's files (another load of the same
 * manifest is the same plugin). Returns the release.
 */
export function claimPluginPaths(manifest: Manifest): () => void {
  const writes = manifest.permissions.filesystem.write ?? []
  const { token, refusal } = claimNative({
    manifest: realPath(manifest.file),
    wasm: realPath(path.resolve(manifest.dir, manifest.component.wasm)),
    writable: writes.map((written) => realPath(path.resolve(manifest.dir, written))),
  })
  if (refusal !== undefined && refusal !== null) {
    const loaded = `the plugin loaded from ${quoted(refusal.other)}`
    const what = refusal.insideOther
      ? `this plugin's files lie in a directory ${loaded} may write (${quoted(refusal.dir)})`
      : `this plugin may write a directory holding the files of ${loaded} (${quoted(refusal.dir)})`
    throw new ConfigError(
      `${manifest.file}: ${what}, whose guest could rewrite that plugin's grants or code for its next load: ` +
        'give each plugin a directory of its own',
      { path: 'permissions.filesystem.write' },
    )
  }
  return () => releasePluginClaim(token)
}
