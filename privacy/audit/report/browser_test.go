package report

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/concord-fl/concord/internal/testenv"
)

// chromiumPath is Debian's chromium; $CONCORD_CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("CONCORD_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browser starts a headless Chromium that cannot resolve any host name, so
// that nothing leaves the machine even if a page asks for it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		testenv.Missing(t, "chromium is not installed (apt-get install -y chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1500),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	return actx
}

// page opens file in a new tab and returns the tab and a function that
// lists the URLs it requested so far.
func openPage(t *testing.T, browser context.Context, file string) (context.Context, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var urls []string
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(func(ev any) {
		var u string
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u = e.Request.URL
		case network.EventRequestWillBeSent:
			u = e.Request.URL
		default:
			return
		}
		mu.Lock()
		urls = append(urls, u)
		mu.Unlock()
	}))
	t.Cleanup(cancel)
	target := (&url.URL{Scheme: "file", Path: file}).String()
	if err := chromedp.Do(ctx, chromedp.Navigate(target), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("open %s in chromium: %v", target, err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), urls...)
	}
}

func external(urls []string) []string {
	var out []string
	for _, u := range urls {
		if !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "data:") {
			out = append(out, u)
		}
	}
	return out
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func TestHTMLInChromium(t *testing.T) {
	b := browser(t)
	r := signedSample(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, render(t, r, FormatHTML), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, requests := openPage(t, b, file)

	if got := eval[string](t, ctx, `document.getElementById("report-title").textContent`); got != "Compliance report" {
		t.Errorf("title text = %q", got)
	}
	if got := eval[string](t, ctx, `document.title`); !strings.Contains(got, r.Consortium) {
		t.Errorf("document title %q does not name the consortium", got)
	}

	rows := eval[[][]string](t, ctx, `Array.from(document.querySelectorAll("#epsilon-table tbody tr"), tr => Array.from(tr.cells, c => c.textContent))`)
	sites := r.Privacy.Sites
	if len(rows) != len(sites[0].Rounds) {
		t.Fatalf("epsilon table has %d rows, want %d (one per round)", len(rows), len(sites[0].Rounds))
	}
	for k, row := range rows {
		want := []string{fmt.Sprint(k + 1)}
		for _, s := range sites {
			want = append(want, eps(s.Rounds[k].Epsilon), eps(s.Rounds[k].Cumulative))
		}
		if strings.Join(row, "|") != strings.Join(want, "|") {
			t.Errorf("epsilon table row %d = %q, want %q", k+1, row, want)
		}
	}

	type box struct{ W, H, NaturalW float64 }
	chart := eval[box](t, ctx, `(() => { const i = document.getElementById("epsilon-chart"); const b = i.getBoundingClientRect(); return {W: b.width, H: b.height, NaturalW: i.naturalWidth}; })()`)
	if chart.W <= 0 || chart.H <= 0 || chart.NaturalW <= 0 {
		t.Errorf("epsilon chart is not drawn: %+v", chart)
	}

	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() == 0 {
		t.Fatalf("screenshot is not an image: %v", err)
	}
	if out := os.Getenv("REPORT_OUT"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "report-html.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Printing (what an officer does with the page) gives A4 pages, the
	// title page alone on the first.
	printed, err := chromedp.Run(ctx, chromedp.PrintToPDF(func(p *page.PrintToPDFParams) { p.PreferCSSPageSize = ptr(true) }))
	if err != nil || !bytes.HasPrefix(printed, []byte("%PDF-")) {
		t.Fatalf("print to PDF: %v", err)
	}
	if out := os.Getenv("REPORT_OUT"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "report-html-print.pdf"), printed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if pdftotext, err := exec.LookPath("pdftotext"); err == nil {
		pdf := filepath.Join(dir, "printed.pdf")
		if err := os.WriteFile(pdf, printed, 0o644); err != nil {
			t.Fatal(err)
		}
		text, err := exec.Command(pdftotext, pdf, "-").Output()
		if err != nil {
			t.Fatalf("pdftotext: %v", err)
		}
		pages := strings.Split(string(text), "\f")
		if len(pages) < 6 || !strings.Contains(pages[0], "Compliance report") || strings.Contains(pages[0], "1. Purpose") {
			t.Errorf("printed %d pages; first page:\n%s", len(pages)-1, pages[0])
		}
	}

	urls := requests()
	if len(urls) == 0 {
		t.Fatal("no request seen: the request recorder is not working")
	}
	if ext := external(urls); len(ext) > 0 {
		t.Errorf("the report asked for outside resources: %q", ext)
	}
}

// The recorder must see a request for an outside resource; otherwise the
// check above would pass for any page.
func TestChromiumSeesExternalRequests(t *testing.T) {
	b := browser(t)
	file := filepath.Join(t.TempDir(), "leaky.html")
	leaky := `<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.concord.invalid/a.css"></head>` +
		`<body><img src="http://cdn.concord.invalid/x.png"></body></html>`
	if err := os.WriteFile(file, []byte(leaky), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, requests := openPage(t, b, file)
	// Wait for the page to finish trying.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" || new Promise(r => window.addEventListener("load", () => r(true)))`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	if ext := external(requests()); len(ext) < 2 {
		t.Errorf("recorded outside requests %q, want both the stylesheet and the image", ext)
	}
}

func ptr[T any](v T) *T { return &v }
