/** The help texts of the command and of each subcommand. */

/** `airssys-wasm --help`. */
export const USAGE = `Usage: airssys-wasm <command> [options]

Runs untrusted WebAssembly components and core modules under hard limits, on Wasmtime.

Commands:
  run <dir|file.wasm> [ARGS...]  run a WASI command or call an export, under limits
  inspect <file.wasm|dir>        list imports and exports with their types
  validate <dir>                 check a Component.toml and its wasm without running them
  types <file.wasm|dir>          write TypeScript declarations of a component's exports and imports

Options:
  -h, --help     show help; \`airssys-wasm <command> --help\` shows a command's
  -v, --version  print the version

Exit codes: 0 success, 1 other failure, 2 usage or configuration error,
3 compile or link error, 4 trap (including timeout, fuel and memory limits),
130/143 a run stopped by SIGINT/SIGTERM, 141 a reader that closed stdout or stderr.
A WASI command run by \`run\` that calls exit(n) exits with n.
`

export const RUN_HELP = `Usage: airssys-wasm run <dir|file.wasm> [options] [--] [ARGS...]

Runs a WASI command, as \`wasmtime run\` does, or calls an export and prints its result as JSON.

A directory (or its Component.toml) runs under the manifest's memory, fuel and timeout
limits; the flags may only lower them. A bare .wasm (or .wat) file has no manifest:
--memory is required, and fuel and timeout apply only when given.

WASI commands (a core module exporting _start, a component exporting wasi:cli/run):
without --invoke the command runs. ARGS are its argv after argv[0] (the path as given,
then the --arg words); its stdout and stderr are printed as it writes them, and the
guest's exit(n) is the CLI's exit code (n above 255 exits 1). stdin is empty unless
--stdin gives it. Put -- before words that start with "-": run tool.wasm -- -v

Arguments (with --invoke, or a wasm that is not a command):
  ARGS               one JSON value per parameter: 42, '[1,2]', '{"x":1}', '"text"'.
                     Text for a string parameter may be bare: run examples/hello world.
                     64-bit integers may be JSON numbers or strings ("18446744073709551615";
                     inside a list or record, above 2^53 only strings). Floats also take
                     NaN, Infinity, -Infinity and -0, bare or as strings.
                     Put -- before arguments that start with "-": run m.wat -- -1

Options:
  --invoke NAME      export to call: a root name (greet) or iface#func (wasi:cli/run#run,
                     _start). Default: a WASI command runs; otherwise the only exported
                     function, if there is exactly one.
  --fuel N           fuel budget for the call
  --timeout-ms N     wall-clock deadline for the call, in milliseconds
  --memory BYTES     memory limit in bytes (required for a bare .wasm)
  --json             print one JSON document on stdout, and nothing else there:
                     { result, metrics: { fuelConsumed, peakMemoryBytes, elapsedMs },
                     stdout, stderr }, the last two being what the guest wrote. On failure:
                     { error: { code, message }, metrics, stdout, stderr } once the call
                     or a start function ran, { error } before (a ConfigError adds
                     error.problems); stderr
                     still gets the CODE: message line. fuelConsumed is null when the call
                     is unmetered, or stopped by its deadline while the guest ran wasm.
                     A command's document has result null (its exit code, if not 0,
                     in error.exitCode)

WASI (the guest gets nothing unless given):
  --dir HOST[::GUEST]     preopen the directory HOST read-only, seen by the guest as GUEST
                          (default: HOST as written). Repeatable. Bare .wasm only: a
                          manifest's files are its [permissions] filesystem grants.
  --dir-rw HOST[::GUEST]  the same, writable: the guest may create, write, rename and
                          delete inside it, and reach nothing outside it
  --env NAME=VALUE        an environment variable (NAME alone: this process's value).
                          Repeatable.
  --arg WORD              an argv word (after argv[0], before ARGS). Repeatable; a word that
                          starts with "-" is written --arg=-x
  --stdin FILE|-          what the guest reads on stdin: the file's bytes, or - for this
                          process's stdin, read to its end first (at most 64 MiB)
  -h, --help              show this help

Output: JSON, where a bigint is a string ending in n ("42n"), a byte list is an array,
NaN and the infinities are strings, and a missing value (no result, an absent option) is
null; without --json, a function without a result prints nothing. What the guest writes
to its stdout and stderr is printed when the call ends, before the result (with --json it
is in the document instead).

Everything printed has its control characters (but newline and tab) escaped as \\uXXXX,
so a guest's output, names or error messages cannot drive the terminal.
`

export const INSPECT_HELP = `Usage: airssys-wasm inspect <file.wasm|dir> [--json]

Lists the imports and exports of a component (with WIT-like types) or a core module (with
core types). A directory inspects the wasm its Component.toml names. Nothing is run.

Options:
  --json      print { kind, imports, exports } as JSON
  -h, --help  show this help
`

export const VALIDATE_HELP = `Usage: airssys-wasm validate <dir> [--json]

Checks a Component.toml against the default policy (every problem is listed) and compiles
the component it names, without running it.

Options:
  --json      print { ok, manifest, imports, exports } as JSON; on failure
              { ok: false, error: { code, message, problems? } }, and the error on stderr
  -h, --help  show this help
`

export const TYPES_HELP = `Usage: airssys-wasm types <file.wasm|dir> [-o out.d.ts]

Writes TypeScript declarations for a component: \`Exports\`, the shape of \`instance.exports\`
(\`component.instantiate<Exports>(...)\`), and \`Imports\`, the shape of the \`imports\` option
(WASI interfaces are provided by the runtime and left out). Values are typed as they cross:
records, variants, enums, flags, options and results, and a class per resource. A directory
describes the wasm its Component.toml names. Nothing is run.

Options:
  -o, --output FILE  write the declarations to FILE instead of stdout
  -h, --help         show this help
`

/** A command's help, by name. */
export const HELP: Record<string, string> = {
  run: RUN_HELP,
  inspect: INSPECT_HELP,
  validate: VALIDATE_HELP,
  types: TYPES_HELP,
}
