// pionpub publishes one camera's pre-encoded H.264 into a LiveKit room, without a pacer.
//
// The Python edge keeps the camera (sources, recording, detection, control) and writes
// each access unit to stdin:
//
//	[4 bytes length, big endian][8 bytes capture time µs][4 bytes frame id][length bytes Annex-B]
//
// pionpub reports on stdout, one JSON object per line:
//
//	{"event":"publishing","track":"TR_…"}   the track is published
//	{"event":"keyframe_request"}            a subscriber asked for a keyframe (PLI/FIR)
//	{"event":"disconnected","reason":"…"}   LiveKit closed the session; pionpub exits 3
//
// Each frame ends with an SEI NAL unit carrying its capture time and frame id in
// LiveKit's packet trailer format, so subscribers can measure latency and match frames.
//
// Why not libwebrtc (livekit.rtc.EncodedVideoSource): for frames that are already
// encoded its pacer holds a keyframe back for tens of milliseconds, and its threads cost
// more CPU than the forwarding itself (bench/peers). pion sends each frame at once.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	protologger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

const (
	headerSize = 16
	// The largest access unit accepted; the edge drops bigger ones before they get here.
	maxFrameBytes    = 16 << 20
	exitDisconnected = 3
)

// events writes the JSON lines the edge reads; one writer at a time.
type events struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *events) send(fields map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.enc.Encode(fields); err != nil {
		log.Printf("stdout closed: %v", err)
	}
}

// seiUUID marks an SEI user_data_unregistered message that carries LiveKit's packet
// trailer (capture time, frame id); LiveKit's SDKs read it from there for H.264.
var seiUUID = []byte{
	0x3f, 0xa8, 0x5f, 0x64, 0x57, 0x17, 0x45, 0x62,
	0xb3, 0xfc, 0x2c, 0x96, 0x3f, 0x66, 0xaf, 0xa6,
}

// trailer is LiveKit's packet trailer ("LKTS"): TLVs with every byte inverted, then the
// trailer's total length inverted, then "LKTS".
func trailer(captureUs uint64, frameID uint32) []byte {
	var out []byte
	if captureUs != 0 {
		out = append(out, ^byte(0x01), ^byte(8))
		out = binary.BigEndian.AppendUint64(out, ^captureUs)
	}
	if frameID != 0 {
		out = append(out, ^byte(0x02), ^byte(4))
		out = binary.BigEndian.AppendUint32(out, ^frameID)
	}
	if len(out) == 0 {
		return nil
	}
	out = append(out, ^byte(len(out)+5))
	return append(out, "LKTS"...)
}

// seiNAL wraps the trailer in an H.264 SEI NAL unit (user_data_unregistered), start code
// included, for the end of the access unit.
//
// Why this shape: appended raw to the last slice, as LiveKit's SDKs do, the trailer made
// Chromium assemble about one frame in five into its neighbour (24 of 30 frames a second
// received, no packet lost). In an SEI NAL unit of its own the slices stay clean and
// Chromium receives every frame. The SEI ends with the trailer itself (no
// rbsp_trailing_bits), so the access unit still ends in "LKTS": readers that look for a
// raw trailer at the end of the frame (livekit.rtc) find it, and readers of LiveKit's
// SEI form (server-sdk-go) find that.
func seiNAL(captureUs uint64, frameID uint32) []byte {
	t := trailer(captureUs, frameID)
	if t == nil {
		return nil
	}
	rbsp := []byte{5, byte(len(seiUUID) + len(t))} // payload type 5, payload size (< 255)
	rbsp = append(rbsp, seiUUID...)
	rbsp = append(rbsp, t...)
	nal := []byte{0, 0, 0, 1, 0x06}
	zeros := 0
	for _, b := range rbsp {
		// Emulation prevention: 00 00 followed by 00..03 gets an 03 in between.
		if zeros >= 2 && b <= 3 {
			nal = append(nal, 3)
			zeros = 0
		}
		nal = append(nal, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return nal
}

type frame struct {
	captureUs uint64
	frameID   uint32
	data      []byte
}

// readFrame reads one framed access unit; io.EOF when the edge closed stdin.
func readFrame(r io.Reader, header []byte) (frame, error) {
	if _, err := io.ReadFull(r, header); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(header[0:4])
	if n == 0 || n > maxFrameBytes {
		return frame{}, fmt.Errorf("bad frame length %d", n)
	}
	f := frame{
		captureUs: binary.BigEndian.Uint64(header[4:12]),
		frameID:   binary.BigEndian.Uint32(header[12:16]),
		data:      make([]byte, n, int(n)+64), // room for the SEI
	}
	if _, err := io.ReadFull(r, f.data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return f, nil
}

func main() {
	url := flag.String("url", "", "LiveKit URL (ws:// or wss://)")
	width := flag.Int("width", 0, "picture width")
	height := flag.Int("height", 0, "picture height")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("pionpub: ")
	token := os.Getenv("LIVECAM_LIVEKIT_TOKEN")
	if *url == "" || token == "" || *width <= 0 || *height <= 0 {
		log.Fatal("usage: LIVECAM_LIVEKIT_TOKEN=… pionpub -url ws://… -width W -height H")
	}
	out := &events{enc: json.NewEncoder(os.Stdout)}
	// The SDK's own log goes to stderr, which the edge logs: errors only. Its warnings
	// include one per viewer that subscribes ("subscriber requested backup codec but no
	// track found": the SDK does not know a single-codec track's MIME type), which would
	// send an operator looking for a fault that is not there.
	if l, err := protologger.NewZapLogger(&protologger.Config{Level: "error"}); err == nil {
		lksdk.SetLogger(l)
	}

	gone := make(chan string, 1)
	room, err := lksdk.ConnectToRoomWithToken(*url, token, &lksdk.RoomCallback{
		OnDisconnectedWithReason: func(reason lksdk.DisconnectionReason) {
			select {
			case gone <- string(reason):
			default:
			}
		},
	}, lksdk.WithAutoSubscribe(false))
	if err != nil {
		log.Fatalf("connect %s: %v", *url, err)
	}
	track, err := lksdk.NewLocalSampleTrack(
		webrtc.RTPCodecCapability{
			MimeType:    webrtc.MimeTypeH264,
			ClockRate:   90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		},
		lksdk.WithRTCPHandler(func(p rtcp.Packet) {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				out.send(map[string]string{"event": "keyframe_request"})
			}
		}),
	)
	if err != nil {
		log.Fatalf("track: %v", err)
	}
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
		Name:                "camera",
		Source:              livekit.TrackSource_CAMERA,
		VideoWidth:          *width,
		VideoHeight:         *height,
		AttachUserTimestamp: true,
		AttachFrameId:       true,
	})
	if err != nil {
		room.Disconnect()
		log.Fatalf("publish: %v", err)
	}
	out.send(map[string]string{"event": "publishing", "track": pub.SID()})

	frames := make(chan frame, 1)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(os.Stdin, 1<<20)
		header := make([]byte, headerSize)
		for {
			f, err := readFrame(r, header)
			if err != nil {
				readErr <- err
				return
			}
			frames <- f
		}
	}()

	var last uint64
	for {
		select {
		case reason := <-gone:
			out.send(map[string]string{"event": "disconnected", "reason": reason})
			os.Exit(exitDisconnected)
		case err := <-readErr:
			room.Disconnect()
			if errors.Is(err, io.EOF) {
				return // the edge stopped this camera
			}
			log.Fatalf("stdin: %v", err)
		case f := <-frames:
			// RTP time follows the capture clock; the sample's duration covers the gap.
			d := 33 * time.Millisecond
			if last != 0 && f.captureUs > last && f.captureUs-last < 2_000_000 {
				d = time.Duration(f.captureUs-last) * time.Microsecond
			}
			last = f.captureUs
			data := append(f.data, seiNAL(f.captureUs, f.frameID)...)
			if err := track.WriteSample(media.Sample{Data: data, Duration: d}, nil); err != nil {
				log.Printf("frame %d not sent: %v", f.frameID, err)
			}
		}
	}
}
