// Stats on demand: resolution, fps, bitrate, packet loss and the transport (UDP, TCP or
// TURN relay) from the video receiver's RTCStatsReport, sampled once a second while
// the panel is open.

import { h, setText } from './dom.js';

const SAMPLE_MS = 1000;

/** Reads the figures out of a receiver's RTCStatsReport; `previous` gives the rates. */
export function summarize(report, previous) {
  const byId = new Map();
  let inbound = null;
  let transport = null;
  let selectedPair = null;
  report.forEach((stat) => {
    byId.set(stat.id, stat);
    if (stat.type === 'inbound-rtp' && (stat.kind ?? stat.mediaType) === 'video') inbound = stat;
    if (stat.type === 'transport') transport = stat;
    if (stat.type === 'candidate-pair' && stat.selected) selectedPair = stat;
  });
  if (!inbound) return null;
  const pair =
    (transport && byId.get(transport.selectedCandidatePairId)) ||
    selectedPair ||
    [...byId.values()].find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  const codec = inbound.codecId ? byId.get(inbound.codecId) : null;

  const out = {
    timestamp: inbound.timestamp,
    bytesReceived: inbound.bytesReceived ?? 0,
    packetsReceived: inbound.packetsReceived ?? 0,
    packetsLost: inbound.packetsLost ?? 0,
    framesDecoded: inbound.framesDecoded ?? 0,
    width: inbound.frameWidth ?? null,
    height: inbound.frameHeight ?? null,
    fps: inbound.framesPerSecond ?? null,
    bitrateKbps: null,
    lossPercent: null,
    codec: codec ? String(codec.mimeType || '').replace(/^video\//, '') : null,
    rttMs: pair && pair.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
    transport: describeTransport(local, remote),
  };
  if (previous && out.timestamp > previous.timestamp) {
    const seconds = (out.timestamp - previous.timestamp) / 1000;
    out.bitrateKbps = ((out.bytesReceived - previous.bytesReceived) * 8) / 1000 / seconds;
    if (out.fps == null) out.fps = (out.framesDecoded - previous.framesDecoded) / seconds;
    const received = out.packetsReceived - previous.packetsReceived;
    const lost = Math.max(0, out.packetsLost - previous.packetsLost);
    out.lossPercent = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
  }
  return out;
}

/**
 * "UDP", "TCP" or "TURN relay (udp|tcp|tls)", from the selected candidate pair: a relay
 * on either side means TURN; otherwise the local candidate's protocol.
 */
export function describeTransport(local, remote) {
  if (!local && !remote) return null;
  const relay = [local, remote].find((c) => c && c.candidateType === 'relay');
  if (relay) {
    const via = (relay.relayProtocol || relay.protocol || '').toLowerCase();
    return via ? `TURN relay (${via})` : 'TURN relay';
  }
  const protocol = String((local && local.protocol) || (remote && remote.protocol) || '');
  const kind = local && local.candidateType ? ` · ${local.candidateType}` : '';
  return `${protocol.toUpperCase() || '?'}${kind}`;
}

const FIELDS = [
  ['resolution', 'Resolution'],
  ['fps', 'Frame rate'],
  ['bitrate', 'Bitrate'],
  ['loss', 'Packet loss'],
  ['transport', 'Transport'],
  ['rtt', 'Round trip'],
  ['codec', 'Codec'],
];

/** A <dl> of stats for a Feed, updated every second while shown. */
export class StatsPanel {
  constructor(feed) {
    this.feed = feed;
    this.values = {};
    this.element = h('dl', { class: 'stats', hidden: true, 'aria-label': 'Stream statistics' });
    for (const [key, label] of FIELDS) {
      const dd = h('dd', { dataset: { stat: key } }, '–');
      this.values[key] = dd;
      this.element.append(h('div', {}, h('dt', {}, label), dd));
    }
    this.timer = 0;
    this.previous = null;
  }

  get shown() {
    return !this.element.hidden;
  }

  show(shown) {
    this.element.hidden = !shown;
    clearInterval(this.timer);
    this.previous = null;
    if (shown) {
      this.#update();
      this.timer = setInterval(() => this.#update(), SAMPLE_MS);
    }
  }

  destroy() {
    clearInterval(this.timer);
    this.element.remove();
  }

  async #update() {
    const mode = this.feed.mode;
    let stats = null;
    if (mode === 'webrtc') {
      try {
        const report = await this.feed.getStatsReport();
        stats = report ? summarize(report, this.previous) : null;
      } catch {
        stats = null;
      }
    }
    this.previous = stats;
    this.#render(mode, stats);
  }

  #render(mode, s) {
    const v = this.values;
    if (!s) {
      for (const key of Object.keys(v)) setText(v[key], '–');
      setText(v.transport, mode === 'mjpeg' ? 'MJPEG over HTTP' : '–');
      return;
    }
    setText(v.resolution, s.width && s.height ? `${s.width}×${s.height}` : '–');
    setText(v.fps, s.fps != null ? `${s.fps.toFixed(0)} fps` : '–');
    setText(v.bitrate, s.bitrateKbps != null ? `${s.bitrateKbps.toFixed(0)} kbit/s` : '–');
    setText(
      v.loss,
      s.lossPercent != null ? `${s.lossPercent.toFixed(1)} % (${s.packetsLost} total)` : '–',
    );
    setText(v.transport, s.transport || '–');
    setText(v.rtt, s.rttMs != null ? `${s.rttMs.toFixed(0)} ms` : '–');
    setText(v.codec, s.codec || '–');
  }
}
