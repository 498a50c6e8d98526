package dimse

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/concord-fl/concord/imaging/pacs"
)

// SOP classes and transfer syntaxes of the services we use.
const (
	verificationClass = "1.2.840.10008.1.1"
	findStudyRoot     = "1.2.840.10008.5.1.4.1.2.2.1"
	moveStudyRoot     = "1.2.840.10008.5.1.4.1.2.2.2"
	getStudyRoot      = "1.2.840.10008.5.1.4.1.2.2.3"
	implicitLE        = "1.2.840.10008.1.2"
	explicitLE        = "1.2.840.10008.1.2.1"
)

// Options are the client's settings. Zero values take the defaults.
type Options struct {
	// CallingAET is our AE title (default "CONCORD"); the URL's calling=
	// overrides it.
	CallingAET string
	// Move retrieves with C-MOVE to the client's own storage SCP instead
	// of C-GET; the URL's move=1 sets it.
	Move bool
	// SCPAddr is where the storage SCP listens for C-MOVE, host:port
	// (default ":" + the URL's scp_port). Port 0 picks a free port, which
	// SCPAddr() reports; the PACS must know our AE title at that port.
	SCPAddr string
	// MovePeers are further hosts (names or addresses) the storage SCP
	// accepts the PACS's associations from, for a PACS that sends from
	// another address than the one we call; by default only the URL's.
	MovePeers []string
	// MaxPDU is the largest PDU we accept and advertise (default 256 KiB,
	// at least 4 KiB).
	MaxPDU uint32
	// MaxInstanceBytes bounds one received data set (default 1 GiB).
	MaxInstanceBytes int64
	// MaxResults bounds the matches one C-FIND may return (default 100000).
	MaxResults int
	// Timeout bounds connecting and each wait for a PDU (default 60s).
	Timeout time.Duration
	// StorageClasses are the storage SOP classes C-GET asks for (default
	// DefaultStorageClasses). Each takes TransferSyntaxes' groups worth
	// of presentation contexts, and an association holds at most 128.
	StorageClasses []string
}

// Client is a DICOM network client of one PACS. Each call opens its own
// association, so calls may run concurrently, except that C-MOVE
// retrievals take turns on the one storage SCP.
type Client struct {
	addr, called string
	opt          Options
	lim          limits
	scp          *storageSCP
	moveMu       sync.Mutex
}

var _ pacs.Source = (*Client)(nil)

// Open configures a client from a URL of the form
//
//	dicom://CALLEDAET@host:port?calling=OURAET&move=1&scp_port=11113
//
// CALLEDAET is the PACS's AE title (required); calling, move and
// scp_port override opts; any other parameter is refused. With move=1
// Open starts the storage SCP, which accepts associations only from the
// PACS's host and AE title.
func Open(u *url.URL, opts Options) (*Client, error) {
	if u.Scheme != "dicom" {
		return nil, fmt.Errorf("dicom URL %q: scheme must be dicom", u.Redacted())
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("dicom URL %q: the PACS's AE title goes before @ (dicom://AET@host:port)", u.Redacted())
	}
	if _, hasPass := u.User.Password(); hasPass {
		return nil, fmt.Errorf("dicom URL %q: DIMSE has no passwords; remove the :password", u.Redacted())
	}
	if u.Port() == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("dicom URL %q: host and port are required", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("dicom URL %q: a path has no meaning here", u.Redacted())
	}
	c := &Client{addr: u.Host, called: u.User.Username(), opt: opts}
	q := u.Query()
	for k, v := range q {
		if len(v) != 1 {
			return nil, fmt.Errorf("dicom URL: parameter %q given %d times", k, len(v))
		}
		switch k {
		case "calling":
			c.opt.CallingAET = v[0]
		case "move":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, fmt.Errorf("dicom URL: move=%q: want 1 or 0", v[0])
			}
			c.opt.Move = b
		case "scp_port":
			p, err := strconv.ParseUint(v[0], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("dicom URL: scp_port=%q is not a port number", v[0])
			}
			c.opt.SCPAddr = ":" + strconv.FormatUint(p, 10)
		default:
			return nil, fmt.Errorf("dicom URL: unknown parameter %q (known: calling, move, scp_port)", k)
		}
	}
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if c.opt.Move {
		if c.opt.SCPAddr == "" {
			return nil, fmt.Errorf("dicom URL: move=1 needs scp_port, the port the PACS sends to")
		}
		scp, err := startSCP(c)
		if err != nil {
			return nil, err
		}
		c.scp = scp
	} else if c.opt.SCPAddr != "" {
		return nil, fmt.Errorf("dicom URL: scp_port is used only with move=1")
	}
	return c, nil
}

func (c *Client) defaults() error {
	o := &c.opt
	if o.CallingAET == "" {
		o.CallingAET = "CONCORD"
	}
	for _, ae := range []string{o.CallingAET, c.called} {
		if err := checkAET(ae); err != nil {
			return err
		}
	}
	if o.MaxPDU == 0 {
		o.MaxPDU = 256 << 10
	}
	if o.MaxPDU < 4096 {
		return fmt.Errorf("dicom: MaxPDU %d is under 4096", o.MaxPDU)
	}
	if o.MaxInstanceBytes == 0 {
		o.MaxInstanceBytes = 1 << 30
	}
	if o.MaxResults == 0 {
		o.MaxResults = 100000
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.StorageClasses == nil {
		o.StorageClasses = DefaultStorageClasses
	}
	if n := len(o.StorageClasses) * len(storageSyntaxGroups); n+1 > 128 {
		return fmt.Errorf("dicom: %d storage classes need %d presentation contexts; an association holds 127 besides C-GET's own", len(o.StorageClasses), n)
	}
	c.lim = limits{maxPDU: o.MaxPDU, maxInstance: o.MaxInstanceBytes, timeout: o.Timeout}
	return nil
}

// checkAET refuses AE titles DICOM does not allow (PS3.5: 1-16 characters
// of the default repertoire, no backslash or control characters).
func checkAET(ae string) error {
	if ae == "" || len(ae) > 16 || strings.TrimSpace(ae) == "" {
		return fmt.Errorf("dicom: AE title %q must be 1 to 16 characters", ae)
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7E || r == '\\' {
			return fmt.Errorf("dicom: AE title %q holds a character DICOM does not allow", ae)
		}
	}
	return nil
}

// SCPAddr is the address the C-MOVE storage SCP listens on, or nil.
func (c *Client) SCPAddr() net.Addr {
	if c.scp == nil {
		return nil
	}
	return c.scp.ln.Addr()
}

// String names the PACS for messages.
func (c *Client) String() string { return fmt.Sprintf("%s at %s", c.called, c.addr) }

func (c *Client) dial(ctx context.Context, proposed []presCtx, roles []roleSel) (*assoc, error) {
	return dialAssoc(ctx, c.addr, c.called, c.opt.CallingAET, &c.lim, proposed, roles)
}

// Echo sends a C-ECHO: whether the PACS answers DICOM at all.
func (c *Client) Echo(ctx context.Context) error {
	a, err := c.dial(ctx, []presCtx{{id: 1, abstract: verificationClass, syntaxes: []string{implicitLE}}}, nil)
	if err != nil {
		return err
	}
	defer a.close()
	rsp, err := a.request(ctx, verificationClass, cEchoRQ, nil, nil)
	if err != nil {
		return err
	}
	if rsp.cmd.field != cEchoRSP || rsp.cmd.messageID != a.msgID {
		a.abort(2, 2)
		return a.errf("%w: got command 0x%04X for message %d in answer to C-ECHO %d", ErrProtocol, rsp.cmd.field, rsp.cmd.messageID, a.msgID)
	}
	if !isSuccess(rsp.cmd.status) {
		return a.errf("%w", &statusError{op: "C-ECHO", status: rsp.cmd.status, comment: rsp.cmd.comment})
	}
	return a.releaseAssoc()
}

// Close stops the storage SCP, if any.
func (c *Client) Close() error {
	if c.scp != nil {
		return c.scp.close()
	}
	return nil
}
