// Command vault is HashiCorp Vault's own command line and server, built
// from the Go module proxy so that CI and developers run a real Vault
// without a Debian package. It lives in a module of its own so that the
// Vault server's ~500 dependencies never enter Concord's go.mod; Concord
// itself imports only the API client (github.com/hashicorp/vault/api).
//
// .ci/run builds it once into $(go env GOPATH)/bin/concord-vault-1.21.0
// and exports the path as CONCORD_VAULT for the tests (internal/testvault).
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
