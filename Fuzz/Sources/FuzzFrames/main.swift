import FuzzDriver
import LevChatCore
import LevChatTransport
import NIOCore
import NIOEmbedded

/// The frame decoder on a channel, fed the bytes in two reads: frames come out whole or the stream
/// is refused, never a crash; nothing above the limits is ever buffered.
func fuzzFrames(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let channel = EmbeddedChannel()
    try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    do {
        try channel.writeInbound(ByteBuffer(bytes: bytes[..<split]))
        try channel.writeInbound(ByteBuffer(bytes: bytes[split...]))
        while let frame = try channel.readInbound(as: ByteBuffer.self) {
            precondition(frame.readableBytes > 0 && frame.readableBytes <= FrameCodec.maximumRecordLength)
        }
        _ = try channel.finish()
    } catch {
        _ = try? channel.finish()
    }
    return 0
}

runFuzzer { data, size in fuzzFrames(data, size) }
