// Package cli is the one command-line convention of Concord's binaries.
//
// Each command is a small value with a name, a synopsis for its parent's
// list, a help text and Run(args, stdout, stderr) int, or a group of
// subcommands (concordctl jobs list). Dispatch picks the command from the
// first word; every level answers the same way:
//
//   - help, -h, --help: the help goes to stdout, exit 0;
//   - no command or an unknown one: the message, a "did you mean" when a
//     name is close, and the usage go to stderr, exit 2;
//   - a command's Run returns 0 on success, 1 when the work failed, 2 on a
//     usage error (an unknown flag, a missing argument).
//
// Each command declares only the flags it reads, with NewFlagSet, and
// parses them with Parse, which accepts flags after positional arguments.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Command is one command of a binary: a leaf with Run, or a group with Sub.
type Command struct {
	Name     string // the word that selects it
	Args     string // its arguments and flags in one line, e.g. "ID [--reason TEXT]"
	Synopsis string // one line for the parent's list
	Help     string // what it does, shown by -h and `help NAME`
	Run      func(args []string, stdout, stderr io.Writer) int
	Sub      []*Command

	path string // "concordctl jobs list", set by Dispatch
}

// Path is the command's full name, e.g. "concordctl jobs list".
func (c *Command) Path() string {
	if c.path == "" {
		return c.Name
	}
	return c.path
}

// Dispatch runs the command args[0] names among cmds. prog is the path of
// this level ("concordctl", "concordctl jobs") and intro the text above its
// command list.
func Dispatch(prog, intro string, cmds []*Command, args []string, stdout, stderr io.Writer) int {
	for _, c := range cmds {
		c.path = prog + " " + c.Name
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "%s: a command is needed\n\n", prog)
		printList(stderr, prog, intro, cmds)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			c := find(cmds, args[1])
			if c == nil {
				return unknown(stderr, prog, args[1], cmds)
			}
			if c.Sub != nil {
				return Dispatch(c.path, c.Help, c.Sub, append([]string{"help"}, args[2:]...), stdout, stderr)
			}
			if c.Run != nil {
				return c.Run([]string{"-h"}, stdout, stderr)
			}
		}
		printList(stdout, prog, intro, cmds)
		return 0
	}
	c := find(cmds, args[0])
	if c == nil {
		return unknown(stderr, prog, args[0], cmds)
	}
	if c.Sub != nil {
		return Dispatch(c.path, c.Help, c.Sub, args[1:], stdout, stderr)
	}
	return c.Run(args[1:], stdout, stderr)
}

func find(cmds []*Command, name string) *Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func unknown(stderr io.Writer, prog, name string, cmds []*Command) int {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, name)
	if s := Suggest(name, names); s != "" {
		fmt.Fprintf(stderr, "did you mean %q?\n", s)
	}
	fmt.Fprintf(stderr, "Run '%s help' for the list of commands.\n", prog)
	return 2
}

func printList(w io.Writer, prog, intro string, cmds []*Command) {
	if intro != "" {
		fmt.Fprintln(w, strings.TrimRight(intro, "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "usage: %s COMMAND [ARGS]\n\ncommands:\n", prog)
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.Name))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Synopsis)
	}
	fmt.Fprintf(w, "\nRun '%s help COMMAND' (or COMMAND -h) for a command's flags.\n", prog)
}

// NewFlagSet returns an empty flag set named after the command; its errors
// go to stderr.
func (c *Command) NewFlagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(c.Path(), flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// Parse parses args with fs and returns the positional arguments; flags may
// come before or after them, and "--" ends the flags. When ok is false the
// command must return code: 0 after -h (help printed to stdout), 2 after a
// bad flag (message and usage line printed to stderr).
func (c *Command) Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.PrintHelp(stdout, fs)
			return nil, 0, false
		}
		if err != nil {
			if name, found := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); found {
				var names []string
				fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
				if s := Suggest(strings.TrimLeft(name, "-"), names); s != "" {
					fmt.Fprintf(stderr, "did you mean --%s?\n", s)
				}
			}
			fmt.Fprintf(stderr, "usage: %s %s\nRun '%s -h' for its flags.\n", c.Path(), c.Args, c.Path())
			return nil, 2, false
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// PrintHelp writes the command's usage line, help and flags to w.
func (c *Command) PrintHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s\n\n", c.Path(), c.Args)
	help := c.Help
	if help == "" {
		help = c.Synopsis
	}
	fmt.Fprintln(w, strings.TrimRight(help, "\n"))
	if fs == nil {
		return
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// Usagef reports a usage error (a missing or extra argument) on stderr and
// returns 2.
func (c *Command) Usagef(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\nusage: %s %s\nRun '%s -h' for its flags.\n", c.Path(), fmt.Sprintf(format, args...), c.Path(), c.Args, c.Path())
	return 2
}

// Fail reports a failed command on stderr and returns 1.
func (c *Command) Fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", c.Path(), err)
	return 1
}

// Suggest returns the name closest to s by edit distance when it is close
// enough to be a typo, else "".
func Suggest(s string, names []string) string {
	best, bestD := "", -1
	for _, n := range names {
		d := distance(s, n)
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) || bestD >= max(len(s), len(best)) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b, by bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Leaf sets c.Run to call f with c itself, for commands written as
// functions of their Command, and returns c.
func Leaf(c *Command, f func(c *Command, args []string, stdout, stderr io.Writer) int) *Command {
	c.Run = func(args []string, stdout, stderr io.Writer) int { return f(c, args, stdout, stderr) }
	return c
}

// Version is the `version` command: it prints "prog version" to stdout.
func Version(prog, version string) *Command {
	return Leaf(&Command{Name: "version", Synopsis: "print the version"},
		func(c *Command, args []string, stdout, stderr io.Writer) int {
			fs := c.NewFlagSet(stderr)
			pos, code, ok := c.Parse(fs, args, stdout, stderr)
			if !ok {
				return code
			}
			if code, ok := c.NoArgs(fs, pos, stderr); !ok {
				return code
			}
			fmt.Fprintln(stdout, prog, version)
			return 0
		})
}

// NoArgs refuses positional arguments for a command that takes none; a word
// close to one of its flags gets a "did you mean --FLAG?".
func (c *Command) NoArgs(fs *flag.FlagSet, pos []string, stderr io.Writer) (code int, ok bool) {
	if len(pos) == 0 {
		return 0, true
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if s := Suggest(strings.TrimLeft(pos[0], "-"), names); s != "" {
		return c.Usagef(stderr, "unexpected argument %q; did you mean --%s?", pos[0], s), false
	}
	return c.Usagef(stderr, "unexpected argument %q", pos[0]), false
}
