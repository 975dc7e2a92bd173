/// Frame layout on the TCP stream (Docs/PROTOCOL.md, "Frames"):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------------------------------------------------------+
/// |                 payload length (big endian)                   |
/// +---------------------------------------------------------------+
/// |         payload (1 ... 65536 bytes): JSON, then AEAD records   |
/// +---------------------------------------------------------------+
/// ```
///
/// The length is checked as soon as the 4 header bytes are in, before any payload is buffered.
public enum FrameCodec {
    public static let headerLength = 4
    public static let maximumPayloadLength = 64 * 1024

    public static func header(forPayloadLength length: Int) -> [UInt8] {
        precondition(length <= maximumPayloadLength)
        let n = UInt32(length)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
    }

    /// Validates a decoded header; empty and oversized frames are protocol errors.
    public static func payloadLength(fromHeader value: UInt32) throws(FrameError) -> Int {
        guard value > 0 else { throw .empty }
        guard value <= maximumPayloadLength else { throw .tooLarge(Int(value)) }
        return Int(value)
    }

    public static func encode(_ payload: [UInt8]) throws(FrameError) -> [UInt8] {
        guard !payload.isEmpty else { throw .empty }
        guard payload.count <= maximumPayloadLength else { throw .tooLarge(payload.count) }
        return header(forPayloadLength: payload.count) + payload
    }
}

public enum FrameError: Error, Equatable, CustomStringConvertible {
    case tooLarge(Int)
    case empty
    case truncated(missing: Int)

    public var description: String {
        switch self {
        case .tooLarge(let n): "frame of \(n) bytes is over the \(FrameCodec.maximumPayloadLength)-byte limit"
        case .empty: "empty frame"
        case .truncated(let missing): "connection ended inside a frame (\(missing) bytes missing)"
        }
    }
}
