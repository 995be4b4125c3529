package uacce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// fakeKernel is a uacce + hisi_qm kernel in miniature: queue budget (EBUSY),
// qc_type check, SET_QP_INFO (or EINVAL on an "old kernel"), regions mapped
// once each (EEXIST) with the exact sysfs size, states INIT -> STARTED ->
// ZOMBIE (§1.5, §1.7, §6.2). It logs every call so tests can check order.
type fakeKernel struct {
	mu        sync.Mutex
	page      int
	budget    int
	nextID    uint16
	oldKernel bool
	sizes     [2]int // MMIO, DUS region sizes the "driver" registered
	failStart bool
	pollReady bool
	pollErr   bool
	readyFDs  map[int]bool  // per-descriptor readiness for PollMany
	polling   chan struct{} // if set, Poll signals it when it starts waiting
	fds       map[int]*fakeFD
	nextFD    int
	log       []string
}

type fakeFD struct {
	state  string // INIT, STARTED, ZOMBIE
	id     uint16
	maps   [2][]byte
	closed bool
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{page: 4096, budget: 2, sizes: [2]int{8192, 151552}, fds: map[int]*fakeFD{}, nextFD: 3}
}

func (k *fakeKernel) logf(f string, a ...any) { k.log = append(k.log, fmt.Sprintf(f, a...)) }

func (k *fakeKernel) Open(path string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if path != "/dev/hisi_zip-0" {
		return -1, syscall.ENOENT
	}
	if k.budget == 0 {
		return -1, syscall.EBUSY
	}
	k.budget--
	fd := k.nextFD
	k.nextFD++
	k.fds[fd] = &fakeFD{state: "INIT", id: k.nextID}
	k.nextID++
	k.logf("open")
	return fd, nil
}

func (k *fakeKernel) Ioctl(fd int, cmd IoctlCmd, arg []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.fds[fd]
	if f == nil || f.closed {
		return syscall.EBADF
	}
	if uint32(len(arg)) != cmd.Size() {
		return syscall.EFAULT
	}
	switch cmd {
	case CmdSetQPCtx:
		c := UnmarshalQPCtx([4]byte(arg))
		if c.QCType > 1 {
			return syscall.EINVAL
		}
		binary.LittleEndian.PutUint16(arg, f.id)
		k.logf("SET_QP_CTX(%d)", c.QCType)
	case CmdSetQPInfo:
		if k.oldKernel {
			return syscall.EINVAL
		}
		b := QPInfo{SQESize: 128, SQDepth: 1024, CQDepth: 1024}.Marshal()
		copy(arg, b[:])
		k.logf("SET_QP_INFO")
	case CmdStartQ:
		if f.state != "INIT" || k.failStart {
			return syscall.EINVAL
		}
		f.state = "STARTED"
		k.logf("START_Q")
	case CmdPutQ:
		f.state = "ZOMBIE"
		k.logf("PUT_Q")
	default:
		return syscall.ENOTTY
	}
	return nil
}

func (k *fakeKernel) Mmap(fd int, pgoff int64, length int) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.fds[fd]
	switch {
	case f == nil || f.closed:
		return nil, syscall.EBADF
	case pgoff < 0 || pgoff > 1:
		return nil, syscall.EINVAL
	case f.state != "INIT" && f.state != "STARTED":
		return nil, syscall.EINVAL
	case f.maps[pgoff] != nil:
		return nil, syscall.EEXIST
	case length != k.sizes[pgoff]:
		return nil, syscall.EINVAL
	}
	w := make([]uint64, length/8)
	f.maps[pgoff] = unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), length)
	k.logf("mmap(%d,%d)", pgoff, length)
	return f.maps[pgoff], nil
}

func (k *fakeKernel) Munmap(b []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range k.fds {
		for i, m := range f.maps {
			if m != nil && &m[0] == &b[0] {
				f.maps[i] = nil
				k.logf("munmap(%d)", i)
				return nil
			}
		}
	}
	return syscall.EINVAL
}

func (k *fakeKernel) Poll(fd int, timeout time.Duration) (bool, bool, error) {
	k.mu.Lock()
	ready, perr := k.pollReady, k.pollErr
	if f := k.fds[fd]; f == nil || f.closed {
		k.logf("poll on closed fd")
		k.mu.Unlock()
		return false, false, syscall.EBADF
	}
	polling := k.polling
	k.mu.Unlock()
	if !ready && !perr {
		if polling != nil {
			select {
			case polling <- struct{}{}:
			default:
			}
		}
		time.Sleep(timeout)
	}
	return ready, perr, nil
}

func (k *fakeKernel) PollMany(fds []int, timeout time.Duration) ([]bool, []bool, error) {
	k.mu.Lock()
	ready, bad := make([]bool, len(fds)), make([]bool, len(fds))
	any := false
	for i, fd := range fds {
		if f := k.fds[fd]; f == nil || f.closed {
			k.logf("poll on closed fd")
			k.mu.Unlock()
			return nil, nil, syscall.EBADF
		}
		ready[i], bad[i] = k.pollReady || k.readyFDs[fd], k.pollErr
		any = any || ready[i] || bad[i]
	}
	k.logf("poll(%d fds)", len(fds))
	polling := k.polling
	k.mu.Unlock()
	if !any {
		if polling != nil {
			select {
			case polling <- struct{}{}:
			default:
			}
		}
		time.Sleep(timeout)
	}
	return ready, bad, nil
}

func (k *fakeKernel) Close(fd int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.fds[fd]
	if f == nil || f.closed {
		return syscall.EBADF
	}
	f.closed = true
	k.budget++
	k.logf("close")
	return nil
}

func (k *fakeKernel) PageSize() int { return k.page }

func (k *fakeKernel) takeLog() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.log
	k.log = nil
	return l
}

var fakeDev = Device{Name: "hisi_zip-0", DevPath: "/dev/hisi_zip-0", API: "hisi_qm_v2", APIVersion: 2, Node: 1, MMIOSize: 8192, DUSSize: 151552}

func eqLog(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: calls %v, want %v", what, got, want)
	}
}

func TestOpenSequence(t *testing.T) {
	k := newFakeKernel()
	q, err := openDevQueue(k, fakeDev, Decompress)
	if err != nil {
		t.Fatal(err)
	}
	eqLog(t, "open", k.takeLog(), "open", "SET_QP_CTX(1)", "SET_QP_INFO", "mmap(0,8192)", "mmap(1,151552)", "START_Q")
	info := q.Info()
	if info.QPID != 0 || info.Direction != Decompress || info.SQESize != 128 || info.SQDepth != 1024 || info.InfoDefaulted ||
		info.Node != 1 || info.PageSize != 4096 || len(q.MMIO()) != 8192 || len(q.DUS()) != 151552 {
		t.Fatalf("info %+v", info)
	}
	// Doorbell: one little-endian 64-bit store at the offset.
	if err := q.Doorbell(0x1000, 0x0001000500001007); err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint64(q.MMIO()[0x1000:]) != 0x0001000500001007 {
		t.Fatal("doorbell value not stored")
	}
	if q.Doorbell(0x2000, 1) == nil || q.Doorbell(0x1004, 1) == nil {
		t.Fatal("bad doorbell offsets accepted")
	}
	// Wait maps poll results.
	if ok, err := q.Wait(time.Millisecond); ok || err != nil {
		t.Fatalf("idle wait %v %v", ok, err)
	}
	k.pollReady = true
	if ok, err := q.Wait(time.Second); !ok || err != nil {
		t.Fatalf("ready wait %v %v", ok, err)
	}
	k.pollReady, k.pollErr = false, true
	if _, err := q.Wait(time.Second); !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("POLLERR: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	eqLog(t, "close", k.takeLog(), "PUT_Q", "munmap(0)", "munmap(1)", "close")
	if err := q.Close(); err != nil || len(k.takeLog()) != 0 {
		t.Fatal("second Close is not a no-op")
	}
	if q.Doorbell(0x1000, 1) != ErrClosed {
		t.Fatal("doorbell after close")
	}
	if _, err := q.Wait(0); err != ErrClosed {
		t.Fatal("wait after close")
	}
}

func TestOpenOldKernelAndBudget(t *testing.T) {
	k := newFakeKernel()
	k.oldKernel = true
	q1, err := openDevQueue(k, fakeDev, Compress)
	if err != nil {
		t.Fatal(err)
	}
	if i := q1.Info(); !i.InfoDefaulted || i.SQDepth != DefaultDepth || i.CQDepth != DefaultDepth || i.SQESize != DefaultSQESize {
		t.Fatalf("old kernel info %+v", i)
	}
	q2, err := openDevQueue(k, fakeDev, Compress)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openDevQueue(k, fakeDev, Compress); !errors.Is(err, ErrBusy) {
		t.Fatalf("third open: %v", err)
	}
	q1.Close()
	q3, err := openDevQueue(k, fakeDev, Compress)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	if q3.Info().QPID == q2.Info().QPID {
		t.Fatal("qp ids reused while open")
	}
	q2.Close()
	q3.Close()
	other := fakeDev
	other.DevPath = "/dev/hisi_zip-7"
	if _, err := openDevQueue(k, other, Compress); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("missing node: %v", err)
	}
}

// Failures part way undo exactly what was done: no PUT_Q before START,
// every mapping unmapped, the fd closed, the queue back in the budget.
func TestOpenFailureUndo(t *testing.T) {
	k := newFakeKernel()
	bad := fakeDev
	bad.DUSSize = 4096 * 36 // sysfs disagrees with the driver: mmap EINVAL
	if _, err := openDevQueue(k, bad, Compress); err == nil {
		t.Fatal("wrong DUS size accepted")
	}
	eqLog(t, "dus mmap fails", k.takeLog(), "open", "SET_QP_CTX(0)", "SET_QP_INFO", "mmap(0,8192)", "munmap(0)", "close")

	k.failStart = true
	if _, err := openDevQueue(k, fakeDev, Compress); err == nil {
		t.Fatal("START failure ignored")
	}
	eqLog(t, "start fails", k.takeLog(), "open", "SET_QP_CTX(0)", "SET_QP_INFO", "mmap(0,8192)", "mmap(1,151552)", "munmap(0)", "munmap(1)", "close")

	k.failStart = false
	if _, err := openDevQueue(k, fakeDev, Direction(2)); err == nil {
		t.Fatal("qc_type 2 accepted")
	}
	eqLog(t, "bad qc_type", k.takeLog(), "open", "close")
	if k.budget != 2 {
		t.Fatalf("budget leaked: %d", k.budget)
	}
}

// A Wait parked in poll() when Close runs keeps the descriptor open (so
// its number cannot be reused under it); the Wait closes it on the way out.
func TestCloseDuringWait(t *testing.T) {
	k := newFakeKernel()
	q, err := openDevQueue(k, fakeDev, Compress)
	if err != nil {
		t.Fatal(err)
	}
	k.takeLog()
	k.mu.Lock()
	k.polling = make(chan struct{}, 1)
	k.mu.Unlock()
	done := make(chan error, 1)
	go func() { _, err := q.Wait(300 * time.Millisecond); done <- err }()
	select {
	case <-k.polling: // parked in poll()
	case <-time.After(60 * time.Second): // hang guard, not a timing check
		t.Fatal("Wait never polled")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	eqLog(t, "close with a parked Wait", k.takeLog(), "PUT_Q", "munmap(0)", "munmap(1)")
	if _, err := q.Wait(0); err != ErrClosed {
		t.Fatalf("wait after close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("parked wait: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("parked wait did not return")
	}
	eqLog(t, "parked wait returned", k.takeLog(), "close")
	if k.budget != 2 {
		t.Fatalf("budget %d", k.budget)
	}
}

// WaitAny parks in one poll(2) over every queue's descriptor and reports a
// completion on any of them; a queue closed while the wait is parked keeps
// its descriptor until the wait leaves, as with Wait.
func TestWaitAnyPollsEveryQueue(t *testing.T) {
	k := newFakeKernel()
	q1, err := openDevQueue(k, fakeDev, Compress)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := openDevQueue(k, fakeDev, Decompress)
	if err != nil {
		t.Fatal(err)
	}
	k.takeLog()
	k.mu.Lock()
	k.readyFDs = map[int]bool{q2.(*devQueue).fd: true}
	k.mu.Unlock()
	ok, err := WaitAny([]Queue{q1, q2}, time.Second)
	if !ok || err != nil {
		t.Fatalf("completion on the second queue: %v %v", ok, err)
	}
	eqLog(t, "one poll over both", k.takeLog(), "poll(2 fds)")

	k.mu.Lock()
	k.readyFDs = nil
	k.polling = make(chan struct{}, 1)
	k.mu.Unlock()
	done := make(chan error, 1)
	go func() { _, err := WaitAny([]Queue{q1, q2}, 300*time.Millisecond); done <- err }()
	<-k.polling
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("parked WaitAny: %v", err)
	}
	eqLog(t, "close during WaitAny", k.takeLog(), "poll(2 fds)", "PUT_Q", "munmap(0)", "munmap(1)", "close")
	if _, err := WaitAny([]Queue{q1}, 0); err != ErrClosed {
		t.Fatalf("all closed: %v", err)
	}
	q2.Close()
}
