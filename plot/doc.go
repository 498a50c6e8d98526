// Package plot owns Concord's result pictures: line charts (learning
// curves, epsilon over rounds) and grouped bar charts (per-site metrics),
// rendered as PNG with gonum.org/v1/plot in pure Go, so that every binary,
// static ones included, can write them without a plotting stack installed.
//
// The charts are meant to be pasted into a report: white background,
// labelled axes, light gridlines, a legend beside the plot rather than over
// the data, a colour-blind-safe palette (Okabe and Ito) with a distinct
// marker shape per series so they survive black-and-white printing, and an
// optional footnote for the command that reproduces the figure. The package
// keeps gonum's types out of its API: callers fill a [Chart] or [BarChart].
//
// The caller's duties: fill a [Chart] or [BarChart] and call its PNG
// method; check the error, which names what is wrong with the input
// (mismatched lengths, an empty chart, an impossible size or axis range).
// Non-finite values are not drawn: a NaN point breaks a line, a NaN bar is
// marked "n/a". Rendering is deterministic: the same chart gives the same
// bytes.
package plot
