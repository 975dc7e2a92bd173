#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
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

/// The one way a record goes onto a link: its length header and the record in one buffer. Every
/// writer frames with it and writes through the channel (whose pipeline decodes inbound frames
/// only), so both directions and both roles use one write path; the host frames a broadcast once
/// and hands the same buffer to every member (NIO shares its storage).
public enum Framing {
    /// A frame holding `plaintext` sealed by `sealer`, written straight into the frame's buffer
    /// (no record array in between: a file's 60 KiB records are copied once less).
    public static func sealed(_ plaintext: some DataProtocol, with sealer: inout some RecordSealing,
                              allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(LinkError) -> ByteBuffer {
        let length = plaintext.count + sealer.overhead
        guard length <= FrameCodec.maximumRecordLength else { throw .frame(.tooLarge(length, limit: FrameCodec.maximumRecordLength)) }
        var buffer = allocator.buffer(capacity: FrameCodec.headerLength + length)
        buffer.writeInteger(UInt32(length))
        do throws(RecordError) { try sealer.seal(plaintext) { buffer.writeBytes($0) } } catch { throw .record(error) }
        return buffer
    }

    public static func buffer(_ record: [UInt8], allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(FrameError) -> ByteBuffer {
        guard record.count <= FrameCodec.maximumRecordLength else { throw .tooLarge(record.count, limit: FrameCodec.maximumRecordLength) }
        var buffer = allocator.buffer(capacity: FrameCodec.headerLength + record.count)
        buffer.writeInteger(UInt32(record.count))
        buffer.writeBytes(record)
        return buffer
    }
}
