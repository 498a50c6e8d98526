// Package config decodes the binaries' YAML config files (coordinator.yaml,
// agent.yaml, concordctl.yaml) one way: an unknown key is an error that
// names the key and its line, so a typo never silently keeps a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode decodes data into v, refusing keys v does not have. An empty file
// decodes to the zero value.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = tidy(m)
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

var (
	unknownKey = regexp.MustCompile(`^(line \d+): field (\S+) not found in type .*$`)
	goType     = regexp.MustCompile(` into [\w.\[\]*]+$`)
)

// tidy rewrites yaml.v3's messages for a person who has never seen the Go
// types: "line 3: field stat_dir not found in type main.fileConfig" becomes
// "line 3: unknown key stat_dir".
func tidy(msg string) string {
	if m := unknownKey.FindStringSubmatch(msg); m != nil {
		return m[1] + ": unknown key " + m[2]
	}
	return goType.ReplaceAllString(msg, "")
}
