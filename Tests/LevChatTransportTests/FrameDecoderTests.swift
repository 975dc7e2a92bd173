import LevChatCore
import LevChatTestSupport
import NIOCore
import NIOEmbedded
import Testing
@testable import LevChatTransport

@Suite struct FrameDecoderTests {
    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
        return channel
    }

    @Test(arguments: [1, 2, 7, 1000])
    func framesReassembleFromRandomChunks(seed: UInt64) throws {
        var rng = SplitMix(seed: seed)
        let payloads: [[UInt8]] = (0..<50).map { i in
            (0..<Int(rng.next() % 3000 + 1)).map { UInt8(truncatingIfNeeded: $0 &+ i) }
        }
        var stream = payloads.flatMap { try! FrameCodec.encode($0) }[...]
        let channel = try channel()
        while !stream.isEmpty {
            let n = min(stream.count, Int(rng.next() % 700) + 1)
            try channel.writeInbound(ByteBuffer(bytes: stream.prefix(n)))
            stream = stream.dropFirst(n)
        }
        var received: [[UInt8]] = []
        while var frame = try channel.readInbound(as: ByteBuffer.self) {
            received.append(frame.readBytes(length: frame.readableBytes)!)
        }
        #expect(received == payloads)
        #expect(try channel.finish().isClean)
    }

    @Test func oversizedLengthIsRefusedFromTheHeaderAlone() throws {
        let channel = try channel()
        // Only the header arrives; the decoder must not wait for 100 KB of payload.
        #expect(throws: FrameError.tooLarge(100_000, limit: 65536)) {
            try channel.writeInbound(ByteBuffer(bytes: [0x00, 0x01, 0x86, 0xA0]))  // 100 000
        }
        _ = try? channel.finish()
    }

    @Test func afterTheHandshakeFramesMayBeUpToAMebibyte() throws {
        let channel = try channel()
        // Two handshake frames, then a record of 100 000 bytes is fine and one over 1 MiB is not.
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 1, 7, 0, 0, 0, 1, 8]))
        try channel.writeInbound(ByteBuffer(bytes: [0x00, 0x01, 0x86, 0xA0] + [UInt8](repeating: 1, count: 100_000)))
        var sizes: [Int] = []
        while let frame = try channel.readInbound(as: ByteBuffer.self) { sizes.append(frame.readableBytes) }
        #expect(sizes == [1, 1, 100_000])
        #expect(throws: FrameError.tooLarge((1 << 20) + 1, limit: 1 << 20)) {
            try channel.writeInbound(ByteBuffer(bytes: [0x00, 0x10, 0x00, 0x01]))
        }
        _ = try? channel.finish()
    }

    @Test func streamEndingInsideAFrameIsAnError() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 10, 1, 2, 3]))
        #expect(throws: FrameError.truncated(missing: 7)) { try channel.finish() }
    }

    @Test func oversizedRecordsAreNotFramed() throws {
        #expect(throws: FrameError.tooLarge(FrameCodec.maximumRecordLength + 1, limit: FrameCodec.maximumRecordLength)) {
            try Framing.buffer([UInt8](repeating: 1, count: FrameCodec.maximumRecordLength + 1))
        }
        #expect(try Framing.buffer([UInt8](repeating: 1, count: FrameCodec.maximumRecordLength)).readableBytes
            == FrameCodec.maximumRecordLength + FrameCodec.headerLength)
    }

    @Test func recordsGetTheirLengthPrefixAndDecodeBack() throws {
        var frame = try Framing.buffer([5, 6, 7])
        #expect(frame.getBytes(at: 0, length: frame.readableBytes) == [0, 0, 0, 3, 5, 6, 7])
        let channel = try channel()
        try channel.writeInbound(frame)
        var payload = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(payload.readBytes(length: payload.readableBytes) == [5, 6, 7])
        frame.clear()
        _ = try channel.finish()
    }
}

@Suite struct OutboundQueueTests {
    @Test func aFullQueueSaysSoInsteadOfGrowing() {
        let queue = OutboundQueue(maxBytes: 10)
        #expect(queue.enqueue([1, 2, 3, 4, 5, 6]))
        #expect(!queue.enqueue([1, 2, 3, 4, 5]))
        #expect(queue.enqueue([1, 2, 3, 4]))
    }

    @Test func theWriterGetsEverythingInOrderThenNilAfterFinish() async {
        let queue = OutboundQueue()
        _ = queue.enqueue([1])
        _ = queue.enqueue([2])
        #expect(await queue.nextBatch() == [[1], [2]])
        async let next = queue.nextBatch()
        _ = queue.enqueue([3])
        #expect(await next == [[3]])
        _ = queue.enqueue([4])
        queue.finish()
        #expect(await queue.nextBatch() == [[4]])
        #expect(await queue.nextBatch() == nil)
    }

    @Test func cancellingAWaitingWriterEndsIt() async {
        let queue = OutboundQueue()
        let writer = Task { await queue.nextBatch() }
        try? await Task.sleep(for: .milliseconds(20))
        writer.cancel()
        #expect(await writer.value == nil)
    }
}
