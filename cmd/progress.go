package cmd

import (
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows a byte-count bar on stderr when it is a terminal.
type progress struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

func newProgress(enabled bool, name string, total int64) *progress {
	if !enabled || !stderrIsTerminal() {
		return &progress{}
	}
	p := mpb.New(mpb.WithOutput(os.Stderr), mpb.WithWidth(40))
	bar := p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name+" "), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f"), decor.Name(" "), decor.Percentage()),
	)
	return &progress{p: p, bar: bar}
}

func (p *progress) reader(r io.Reader) io.Reader {
	if p.bar == nil {
		return r
	}
	if pr, err := p.bar.ProxyReader(r); err == nil {
		return pr
	}
	return r
}

func (p *progress) writer(w io.Writer) io.Writer {
	if p.bar == nil {
		return w
	}
	if pw, err := p.bar.ProxyWriter(w); err == nil {
		return pw
	}
	return w
}

// set moves the bar to n.
func (p *progress) set(n int64) {
	if p.bar != nil {
		p.bar.SetCurrent(n)
	}
}

// done completes (or aborts) the bar and waits for the last render.
func (p *progress) done(ok bool) {
	if p.bar == nil {
		return
	}
	if ok {
		p.bar.SetTotal(-1, true)
	} else {
		p.bar.Abort(false)
	}
	p.p.Wait()
}
