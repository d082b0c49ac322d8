/** `tiktools-broker --help`; the README's "Command-line tool" section repeats it. */
export const USAGE = `Usage: tiktools-broker <command> [options]

Operator tool for tiktools-broker, the token broker for the tik.tools TikTok LIVE API.

Commands:
  check-config FILE   Validate a tenants file (YAML or JSON) exactly as the server
                      does at start-up, \${VAR} taken from the current environment,
                      and print one line per tenant. Never prints a secret, a PEM
                      key or a key hash.
  hash-key            Read a broker API key from stdin and print only its
                      sha256:<hex> form, for auth.apiKeys or BROKER_API_KEYS:
                        printf %s "$KEY" | tiktools-broker hash-key
  new-key [--json]    Print a new random API key (tkb_...) and its hash. Give the
                      key to the caller; put only the hash in the configuration.
                      --json prints {"key": ..., "hash": ...} instead.

Options:
  -h, --help          Show this help.

Exit status:
  0  success
  1  invalid configuration, unreadable file, or a refused key
  2  bad usage: unknown command or option, missing or extra argument,
     hash-key run on a terminal instead of a pipe
`
