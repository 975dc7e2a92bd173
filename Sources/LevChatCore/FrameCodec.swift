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
    /// The largest frame of the handshake (the first two frames each side reads).
    public static let maximumPayloadLength = 64 * 1024
    /// The largest record once a link is authenticated: a roster of 500 members (in `welcome`
    /// and every `presence`) is about 100 KiB.
    public static let maximumRecordLength = 1024 * 1024
    /// Frames each side reads before its link is authenticated (hello and auth, or challenge and
    /// auth_ok).
    public static let handshakeFrames = 2

    /// The 4-byte header of a frame of up to `maximumRecordLength` bytes (what `encode` accepts).
    public static func header(forPayloadLength length: Int) -> [UInt8] {
        precondition(length >= 0 && length <= maximumRecordLength)
        let n = UInt32(length)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
    }

    /// Validates a decoded header; empty and oversized frames are protocol errors.
    public static func payloadLength(fromHeader value: UInt32, maximum: Int = maximumPayloadLength) throws(FrameError) -> Int {
        guard value > 0 else { throw .empty }
        guard value <= maximum else { throw .tooLarge(Int(value), limit: maximum) }
        return Int(value)
    }

    public static func encode(_ payload: [UInt8]) throws(FrameError) -> [UInt8] {
        guard !payload.isEmpty else { throw .empty }
        guard payload.count <= maximumRecordLength else { throw .tooLarge(payload.count, limit: maximumRecordLength) }
        return header(forPayloadLength: payload.count) + payload
    }
}

public enum FrameError: Error, Equatable, CustomStringConvertible {
    case tooLarge(Int, limit: Int)
    case empty
    case truncated(missing: Int)

    public var description: String {
        switch self {
        case .tooLarge(let n, let limit): "frame of \(n) bytes is over the \(limit)-byte limit"
        case .empty: "empty frame"
        case .truncated(let missing): "connection ended inside a frame (\(missing) bytes missing)"
        }
    }
}
