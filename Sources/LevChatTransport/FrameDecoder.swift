import LevChatCore
import NIOCore

/// Splits the TCP stream into frame payloads (see `FrameCodec` for the layout).
///
/// Unlike NIOExtras' `LengthFieldBasedFrameDecoder`, it refuses an oversized length as soon as the
/// 4 header bytes arrive, so a hostile peer cannot make us buffer more than one maximum frame.
///
/// The handshake's frames may be at most 64 KiB; the records after them, 1 MiB (a roster of 500
/// members does not fit in 64 KiB). Before a peer has proved anything, it can make us hold at most
/// one small frame.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    private var framesRead = 0

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let header = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let maximum = framesRead < FrameCodec.handshakeFrames ? FrameCodec.maximumPayloadLength : FrameCodec.maximumRecordLength
        let length = try FrameCodec.payloadLength(fromHeader: header, maximum: maximum)
        guard buffer.readableBytes >= FrameCodec.headerLength + length else { return .needMoreData }
        framesRead += 1
        buffer.moveReaderIndex(forwardBy: FrameCodec.headerLength)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: length)!))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let expected = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map { Int($0) + FrameCodec.headerLength }
            throw FrameError.truncated(missing: (expected ?? FrameCodec.headerLength) - buffer.readableBytes)
        }
        return .needMoreData
    }
}

/// Prefixes each outbound payload with its length. The header goes out as its own 4-byte buffer
/// and the payload is passed on untouched (NIO gathers both into one `writev`), so a broadcast does
/// not copy each member's record once more just to put 4 bytes in front of it.
public final class FrameEncoder: ChannelOutboundHandler {
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = unwrapOutboundIn(data)
        guard payload.readableBytes <= FrameCodec.maximumRecordLength else {
            promise?.fail(FrameError.tooLarge(payload.readableBytes, limit: FrameCodec.maximumRecordLength))
            return
        }
        var header = context.channel.allocator.buffer(capacity: FrameCodec.headerLength)
        header.writeInteger(UInt32(payload.readableBytes))
        context.write(wrapOutboundOut(header), promise: nil)
        context.write(data, promise: promise)
    }
}
