//! The model's rings: taking what the driver made available (split or packed), giving it
//! back used with the notification the driver asked for, and moving frames (transmit,
//! delivery into receive buffers, control commands).

use super::*;

impl State {
    pub(super) fn process(&mut self, q: u16) {
        if self.removed.is_some() {
            return;
        }
        if usize::from(q) >= self.queues.len() || !self.queues[usize::from(q)].enabled {
            return;
        }
        if q == self.ctrl_index() {
            self.control();
        } else if q % 2 == 1 {
            self.transmit(q);
        } else {
            self.deliver(q / 2);
        }
    }

    /// The next available chain as (head or buffer id, [(addr, len, writable)]), or `None`.
    pub(super) fn pop_avail(&mut self, q: u16) -> Option<(u16, Vec<Buf>)> {
        let qu = self.queues[usize::from(q)];
        if qu.packed {
            return self.pop_avail_packed(q);
        }
        let avail_idx = mem::load_u16(qu.avail + 2, Ordering::Acquire);
        if avail_idx == qu.last_avail {
            return None;
        }
        let slot = qu.last_avail & (qu.size - 1);
        let head = mem::load_u16(qu.avail + 4 + 2 * u64::from(slot), Ordering::Relaxed);
        let mut chain = Vec::new();
        let mut d = head;
        loop {
            assert!(d < qu.size, "model: descriptor {d} out of range");
            let at = qu.desc + 16 * u64::from(d);
            let (addr, len) = (mem::load_u64(at), mem::load_u32(at + 8));
            let flags = mem::load_u16(at + 12, Ordering::Relaxed);
            // QEMU: "zero sized buffers are not allowed".
            assert!(len > 0, "model: zero-sized descriptor");
            chain.push((addr, len, flags & 2 != 0));
            if flags & 1 == 0 || chain.len() > usize::from(qu.size) {
                break;
            }
            d = mem::load_u16(at + 14, Ordering::Relaxed);
        }
        let qu = &mut self.queues[usize::from(q)];
        qu.last_avail = qu.last_avail.wrapping_add(1);
        if self.driver_features & feature::EVENT_IDX != 0 {
            // Ask to be notified of the next chain (avail_event = what we will read next).
            let at = qu.used + 4 + 8 * u64::from(qu.size);
            mem::store_u16(at, qu.last_avail, Ordering::Relaxed);
        }
        Some((head, chain))
    }

    /// The next available buffer of a packed ring (virtio 1.2 §2.8.6), as
    /// [`pop_avail`](Self::pop_avail).
    pub(super) fn pop_avail_packed(&mut self, q: u16) -> Option<(u16, Vec<Buf>)> {
        let qu = self.queues[usize::from(q)];
        let (mut slot, mut wrap) = (qu.last_avail, qu.avail_wrap);
        let at = |slot: u16| qu.desc + 16 * u64::from(slot);
        // Acquire: the driver stores the first descriptor's flags last, with Release.
        let mut flags = mem::load_u16(at(slot) + 14, Ordering::Acquire);
        let lap = if wrap { DESC_F_AVAIL } else { DESC_F_USED };
        if flags & (DESC_F_AVAIL | DESC_F_USED) != lap {
            if self.driver_features & feature::EVENT_IDX != 0 && !self.cfg.no_notify {
                // Run dry: ask to be notified of this buffer, as QEMU does when a queue
                // empties (and, like QEMU, no request while there is work).
                self.ask_notify(q, (slot, wrap));
            }
            return None;
        }
        let mut chain = Vec::new();
        let id = loop {
            let (addr, len) = (mem::load_u64(at(slot)), mem::load_u32(at(slot) + 8));
            assert!(len > 0, "model: zero-sized descriptor");
            let id = mem::load_u16(at(slot) + 12, Ordering::Relaxed);
            chain.push((addr, len, flags & DESC_F_WRITE != 0));
            slot += 1;
            if slot == qu.size {
                (slot, wrap) = (0, !wrap);
            }
            if flags & DESC_F_NEXT == 0 {
                break id;
            }
            assert!(
                chain.len() < usize::from(qu.size),
                "model: chain longer than the ring"
            );
            flags = mem::load_u16(at(slot) + 14, Ordering::Relaxed);
        };
        let qu = &mut self.queues[usize::from(q)];
        (qu.last_avail, qu.avail_wrap) = (slot, wrap);
        if self.driver_features & feature::EVENT_IDX != 0 && !self.cfg.no_notify {
            // Working: no notifications wanted until the queue runs dry.
            mem::store_u16(qu.used + 2, EVENT_F_DISABLE, Ordering::Relaxed);
        }
        // The buffer id is the last descriptor's (§2.8.6).
        Some((id, chain))
    }

    pub(super) fn avail_cursor(&self, q: u16) -> Cursor {
        let qu = &self.queues[usize::from(q)];
        (qu.last_avail, qu.avail_wrap)
    }

    /// Puts the read position back (buffers taken and not used after all).
    pub(super) fn set_avail_cursor(&mut self, q: u16, (at, wrap): Cursor) {
        let qu = &mut self.queues[usize::from(q)];
        (qu.last_avail, qu.avail_wrap) = (at, wrap);
    }

    /// Asks the driver to notify once it makes the buffer at `at` available: `avail_event`
    /// on a split ring, the device event suppression structure on a packed one (with
    /// EVENT_IDX; without it the packed device's flags stay ENABLE, or DISABLE with
    /// `no_notify`).
    pub(super) fn ask_notify(&mut self, q: u16, (at, wrap): Cursor) {
        let qu = self.queues[usize::from(q)];
        if !qu.packed {
            mem::store_u16(qu.used + 4 + 8 * u64::from(qu.size), at, Ordering::Relaxed);
        } else if self.has(feature::EVENT_IDX) {
            let off_wrap = at | u16::from(wrap) << 15;
            mem::store_u32(qu.used, u32::from(off_wrap) | u32::from(EVENT_F_DESC) << 16);
        }
    }

    /// Returns buffer `id` with `len` bytes written; on a packed ring it took `descs` slots.
    pub(super) fn push_used(&mut self, q: u16, id: u32, len: u32, descs: u16) {
        self.push_used_flags(q, id, len, descs, 0);
    }

    /// [`push_used`](Self::push_used) with `flags` added to a packed used descriptor.
    pub(super) fn push_used_flags(&mut self, q: u16, id: u32, len: u32, descs: u16, flags: u16) {
        let qu = &mut self.queues[usize::from(q)];
        if qu.packed {
            // §2.8.6: id and length first, then the flags (Release) with AVAIL = USED = the
            // used wrap counter. Like QEMU 7.2 (`virtqueue_packed_fill_desc`), no WRITE even
            // for written buffers.
            let at = qu.desc + 16 * u64::from(qu.used_idx);
            mem::store_u32(at + 8, len);
            mem::store_u16(at + 12, id as u16, Ordering::Relaxed);
            let lap = if qu.used_wrap {
                DESC_F_AVAIL | DESC_F_USED
            } else {
                0
            };
            mem::store_u16(at + 14, lap | flags, Ordering::Release);
            let next = u32::from(qu.used_idx) + u32::from(descs);
            if next >= u32::from(qu.size) {
                qu.used_idx = (next - u32::from(qu.size)) as u16;
                qu.used_wrap = !qu.used_wrap;
            } else {
                qu.used_idx = next as u16;
            }
            return;
        }
        let at = qu.used + 4 + 8 * u64::from(qu.used_idx & (qu.size - 1));
        mem::store_u32(at, id);
        mem::store_u32(at + 4, len);
        qu.used_idx = qu.used_idx.wrapping_add(1);
        // The entry before the index (virtio 1.2 §2.7.8.2; the driver's Acquire of idx pairs
        // with this Release).
        mem::store_u16(qu.used + 2, qu.used_idx, Ordering::Release);
    }

    pub(super) fn transmit(&mut self, q: u16) {
        let frames = if self.vmm.runs(q) {
            self.vmm.transmit(q)
        } else {
            self.own_transmit(q)
        };
        for mut bytes in frames {
            assert!(
                bytes.len() > NET_HDR_LEN,
                "model: transmit chain without a frame"
            );
            let frame = bytes.split_off(NET_HDR_LEN);
            if self.cfg.loopback {
                self.pending[usize::from(q / 2)].push_back(frame.clone());
            }
            self.sent.push((q / 2, frame));
        }
        if self.cfg.loopback {
            self.deliver(q / 2);
        }
    }

    /// Every available transmit chain's bytes, in order; each chain is used with length 0.
    pub(super) fn own_transmit(&mut self, q: u16) -> Vec<Vec<u8>> {
        let (mut out, mut heads) = (Vec::new(), Vec::new());
        let start = self.avail_cursor(q);
        while let Some((head, chain)) = self.pop_avail(q) {
            let descs = chain.len() as u16;
            let mut bytes = Vec::new();
            for &(addr, len, writable) in &chain {
                assert!(!writable, "model: writable descriptor on a transmit queue");
                bytes.extend(mem::read_bytes(addr, len as usize));
            }
            heads.push((head, descs));
            out.push(bytes);
        }
        if self.cfg.tx_out_of_order {
            heads.reverse();
        }
        if self.cfg.stale_tx_event && !heads.is_empty() && self.queues[usize::from(q)].packed {
            self.ask_notify(q, start);
        }
        for (head, descs) in heads {
            self.push_used(q, u32::from(head), 0, descs);
        }
        out
    }

    pub(super) fn deliver(&mut self, pair: u16) {
        if self.removed.is_some() {
            return;
        }
        let q = 2 * pair;
        if !self.queues[usize::from(q)].enabled || self.status & status::DRIVER_OK == 0 {
            return;
        }
        let mrg = self.has(feature::MRG_RXBUF);
        if self.vmm.runs(q) {
            let rx = RxShape {
                mrg,
                hdr_flags: self.cfg.rx_hdr_flags,
            };
            let pending = &mut self.pending[usize::from(pair)];
            self.stats.rx_too_small += self.vmm.receive(q, pending, rx);
            return;
        }
        while let Some(frame) = self.pending[usize::from(pair)].front().cloned() {
            let need = NET_HDR_LEN + frame.len();
            // Take chains until the frame fits (one without MRG_RXBUF).
            let start = self.avail_cursor(q);
            let mut taken: Vec<(u16, u64, u32, u16)> = Vec::new();
            let mut room = 0usize;
            while room < need && (mrg || taken.is_empty()) {
                let Some((head, chain)) = self.pop_avail(q) else {
                    break;
                };
                let &(addr, len, writable) = &chain[0];
                assert!(writable, "model: readable descriptor on a receive queue");
                taken.push((head, addr, len, chain.len() as u16));
                room += len as usize;
            }
            if room < need && (mrg || taken.is_empty()) {
                // Out of buffers: give back what was taken and, as QEMU does, ask to be
                // notified when the driver posts more.
                // `pop_avail` stopped at the first buffer not available: that is the one
                // to hear about.
                let end = self.avail_cursor(q);
                self.set_avail_cursor(q, start);
                self.ask_notify(q, end);
                return;
            }
            self.pending[usize::from(pair)].pop_front();
            if room < need {
                // Too small without MRG_RXBUF: QEMU drops it silently; the buffer is not used.
                self.stats.rx_too_small += 1;
                self.set_avail_cursor(q, start);
                continue;
            }
            let num_buffers = self.num_buffers.unwrap_or(taken.len() as u16);
            let data = rx_frame(&frame, self.cfg.rx_hdr_flags, num_buffers);
            let mut at = 0;
            for (head, addr, len, descs) in taken {
                let k = (len as usize).min(data.len() - at);
                mem::write_bytes(addr, &data[at..at + k]);
                at += k;
                self.push_used(q, u32::from(head), k as u32, descs);
            }
        }
    }

    pub(super) fn control(&mut self) {
        let q = self.ctrl_index();
        while let Some((head, chain)) = self.pop_avail(q) {
            let descs = chain.len() as u16;
            let mut cmd = Vec::new();
            let mut ack = None;
            for &(addr, len, writable) in &chain {
                if writable {
                    ack = Some(addr);
                } else {
                    cmd.extend(mem::read_bytes(addr, len as usize));
                }
            }
            let Some(ack) = ack else {
                panic!("model: control chain without an ack buffer");
            };
            let ok = match (
                cmd.first().copied(),
                cmd.get(1).copied(),
                cmd.get(2).copied(),
            ) {
                (Some(0), Some(0), Some(on)) if self.has(feature::CTRL_RX) => {
                    self.promisc = on != 0;
                    true
                }
                (Some(0), Some(1), Some(on)) if self.has(feature::CTRL_RX) => {
                    self.allmulti = on != 0;
                    true
                }
                (Some(4), Some(0), Some(_)) if self.has(feature::MQ) && cmd.len() >= 4 => {
                    let n = u16::from_le_bytes([cmd[2], cmd[3]]);
                    let fits = (1..=self.cfg.max_pairs).contains(&n);
                    if fits {
                        self.active_pairs = n;
                    }
                    fits
                }
                _ => false,
            };
            self.stats.ctrl_commands += 1;
            mem::write_bytes(ack, &[u8::from(!ok)]);
            self.push_used(q, u32::from(head), 1, descs);
        }
    }
}
