"""Admission control in front of pjsua: refuse new INVITEs with 503 + Retry-After.

pjsua answers an INVITE for which it has no free call slot with 486 Busy Here, before any
application callback runs, and this pjsua2 build has 4 slots. A 486 tells a trunk the *user*
is busy; what we mean is "this server is full, retry later or elsewhere" (503, which proxies
and Kamailio's dispatcher fail over on). So a small PJSIP module sits just above pjsua's
(priority APPLICATION-1) and answers new INVITEs statelessly while we are full or draining.
It is registered through the pjsip C API exported by the pjsua2 extension, with ctypes; only
the stable public structs are touched (``pjsip_module``, ``pj_str_t``, list links).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

PJSIP_MOD_PRIORITY_APPLICATION = 64


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    retry_after: int | None


def decide(is_new_invite: bool, active_calls: int, capacity: int, draining: bool,
           retry_after: int) -> Refusal | None:
    """Whether to refuse a request before pjsua sees it (pure)."""
    if not is_new_invite:
        return None
    if draining:
        return Refusal(503, "Service Unavailable", retry_after)
    if active_calls >= capacity:
        return Refusal(503, "Service Unavailable", retry_after)
    return None


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


_ON_RX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _PjsipModule(ctypes.Structure):
    _fields_ = [
        ("prev", ctypes.c_void_p), ("next", ctypes.c_void_p),
        ("name", _PjStr), ("id", ctypes.c_int), ("priority", ctypes.c_int),
        ("load", ctypes.c_void_p), ("start", ctypes.c_void_p), ("stop", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("on_rx_request", _ON_RX), ("on_rx_response", ctypes.c_void_p),
        ("on_tx_request", ctypes.c_void_p), ("on_tx_response", ctypes.c_void_p),
        ("on_tsx_state", ctypes.c_void_p),
    ]


def _pjsua_lib() -> ctypes.CDLL:
    import pjsua2

    so = pjsua2._pjsua2.__file__  # noqa: SLF001 - the extension exports the pjsip C API
    lib = ctypes.CDLL(so)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsua_pool_create.restype = ctypes.c_void_p
    lib.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_unregister_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_rx_data_get_info.restype = ctypes.c_char_p
    lib.pjsip_rx_data_get_info.argtypes = [ctypes.c_void_p]
    lib.pjsip_generic_string_hdr_create.restype = ctypes.c_void_p
    lib.pjsip_generic_string_hdr_create.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(_PjStr), ctypes.POINTER(_PjStr)]
    lib.pj_list_insert_before.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_respond_stateless.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_PjStr),
        ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsua_call_get_count.restype = ctypes.c_uint
    return lib


class InviteGate:
    """Refuses new INVITEs when ``capacity`` calls are up or while draining.

    Create after ``libStart()`` from a pjsua-registered thread; keep a reference for the
    life of the endpoint (the C side points at this object's ctypes memory).
    """

    def __init__(self, capacity: int, retry_after: int,
                 on_refused: Callable[[Refusal], None] = lambda r: None) -> None:
        self.capacity = capacity
        self.retry_after = retry_after
        self.draining = False
        self.refused = 0
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._lib = _pjsua_lib()
        self._endpt = self._lib.pjsua_get_pjsip_endpt()
        self._pool = self._lib.pjsua_pool_create(b"vb-admission", 1024, 1024)
        # The Retry-After header list, built once; respond_stateless clones it per response.
        self._hname = _PjStr(b"Retry-After", len(b"Retry-After"))
        value = str(retry_after).encode()
        self._hvalue_bytes = value
        self._hvalue = _PjStr(value, len(value))
        self._head = (ctypes.c_void_p * 8)()  # a pjsip_hdr used only as the list head
        self._head[0] = self._head[1] = ctypes.addressof(self._head)
        hdr = self._lib.pjsip_generic_string_hdr_create(
            self._pool, ctypes.byref(self._hname), ctypes.byref(self._hvalue))
        self._lib.pj_list_insert_before(ctypes.addressof(self._head), hdr)
        self._reason = _PjStr(b"Service Unavailable", len(b"Service Unavailable"))
        self._name = b"mod-voicebot-admission"
        self._cb = _ON_RX(self._on_rx_request)
        self._mod = _PjsipModule()
        self._mod.name = _PjStr(self._name, len(self._name))
        self._mod.id = -1
        self._mod.priority = PJSIP_MOD_PRIORITY_APPLICATION - 1
        self._mod.on_rx_request = self._cb
        status = self._lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(self._mod))
        if status != 0:
            raise RuntimeError(f"cannot register the admission module (pj_status {status})")

    def active_calls(self) -> int:
        return int(self._lib.pjsua_call_get_count())

    def _on_rx_request(self, rdata: int) -> int:
        try:
            info = self._lib.pjsip_rx_data_get_info(rdata) or b""
            # "Request msg INVITE/cseq=1 (rdata0x...)"; in-dialog requests never reach
            # this priority (the dialog layer takes them), so an INVITE here is a new call.
            is_invite = info.startswith(b"Request msg INVITE/")
            refusal = decide(is_invite, self.active_calls(), self.capacity, self.draining,
                             self.retry_after)
            if refusal is None:
                return 0
            self._lib.pjsip_endpt_respond_stateless(
                self._endpt, rdata, refusal.status, ctypes.byref(self._reason),
                ctypes.addressof(self._head), None)
            with self._lock:
                self.refused += 1
            self._on_refused(refusal)
            return 1
        except Exception:  # noqa: BLE001 - never let an error cross into C; pjsua decides
            log.exception("admission check failed; passing the request to pjsua")
            return 0
