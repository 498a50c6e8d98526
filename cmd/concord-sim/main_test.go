package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/version"
)

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"--version"}, 0, "concord-sim " + version.Of(version.Default), ""},
		{[]string{"-h"}, 0, "usage: concord-sim", ""},
		{[]string{"verison"}, 2, "", "did you mean --version?"},
		{[]string{"--site", "3"}, 2, "", "did you mean --sites?"},
		{[]string{"--dir", "x"}, 2, "", "flag provided but not defined: -dir"},
		{[]string{"--local-epochs", "2", "--local-steps", "3"}, 2, "", "--local-epochs and --local-steps are both given"},
		{[]string{"--local-steps", "0"}, 2, "", "--local-steps 0: want 1..100000"},
		{[]string{"--model", "vgg16"}, 2, "", `--model "vgg16": want cnn, resnet18 or resnet34`},
		{[]string{"--size", "4000"}, 2, "", "--size 4000"},
		{[]string{"--tune-server-lr", "0.01,fast"}, 2, "", `--tune-server-lr: "fast" is not a number`},
		{[]string{"--tune-local-epochs", "1,-2"}, 2, "", `--tune-local-epochs: "-2" is not a number`},
		{[]string{"--tune-rounds", "2"}, 2, "", "--tune-rounds needs --tune-server-lr or --tune-local-epochs"},
		{[]string{"--model-spec", "x.yaml"}, 2, "", "--model-spec declares a segmenter: it needs --task segmentation"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, out.String(), errb.String())
		}
	}
}
