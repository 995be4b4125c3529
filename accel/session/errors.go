package session

import "errors"

// Errors returned by the session layer. They are wrapped with context; test
// with errors.Is.
var (
	// ErrClosed: the Layer (or Session) is closed or closing; no new requests.
	ErrClosed = errors.New("session: closed")
	// ErrQueueFull: a queue had no free slot (normally hidden by credits and
	// fallback; surfaces only from engine internals).
	ErrQueueFull = errors.New("session: queue full")
	// ErrUnsupported: no engine can run this algorithm in this direction.
	ErrUnsupported = errors.New("session: unsupported algorithm/direction")
	// ErrBadRequest: the request itself is invalid (negative RawLen, bad
	// direction, ...).
	ErrBadRequest = errors.New("session: bad request")
	// ErrCtxDead: the ctx was taken out of service (queue disabled, timeout);
	// internal, requests are redone elsewhere.
	ErrCtxDead = errors.New("session: ctx out of service")
	// ErrDevice: the device reported an error status for a request
	// (internal cause of an "error_status" fallback).
	ErrDevice = errors.New("session: device error status")
	// ErrNoDevice: the requested device does not exist or cannot be used.
	ErrNoDevice = errors.New("session: no usable device")
	// ErrTopology: the NUMA topology under the sysfs root is malformed.
	ErrTopology = errors.New("session: bad NUMA topology")
)
