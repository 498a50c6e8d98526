package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/version"
)

func TestDispatcher(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{nil, 2, "", "usage: concord-bench COMMAND"},
		{[]string{"help"}, 0, "aggregate", ""},
		{[]string{"-h"}, 0, "transfer", ""},
		{[]string{"version"}, 0, "concord-bench " + version.Of(version.Default), ""},
		{[]string{"--version"}, 0, "concord-bench ", ""},
		{[]string{"dicm"}, 2, "", `did you mean "dicom"?`},
		{[]string{"trian"}, 2, "", `did you mean "train"?`},
		{[]string{"dicom", "-h"}, 0, "--no-peers", ""},
		// A flag of another benchmark is refused.
		{[]string{"aggregate", "--dir", "x"}, 2, "", "flag provided but not defined: -dir"},
		{[]string{"transfer", "--sites", "3"}, 2, "", "flag provided but not defined: -sites"},
		{[]string{"train", "--params", "1M"}, 2, "", "flag provided but not defined: -params"},
		{[]string{"train", "--model", "vgg16"}, 2, "", `--model "vgg16": want cnn, resnet18 or resnet34`},
		{[]string{"train", "--model", "resnet18", "--size", "100"}, 2, "", "a multiple of 32"},
		{[]string{"dicom"}, 2, "", "--dir is required"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, out.String(), errb.String())
		}
	}
}
