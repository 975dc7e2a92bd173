import Crypto

/// A room's public identity: 8 random bytes made by the creator and kept for the room's life.
/// Advertised as `rid`; nothing about it depends on the code (Docs/THREAT-MODEL.md).
public struct RoomID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public static let length = 8

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.length else { return nil }
        self.bytes = bytes
    }

    public init?(hex: String) {
        guard hex.utf8.count == 2 * Self.length, let bytes = HexBytes.decode(hex) else { return nil }
        self.bytes = bytes
    }

    public static func random() -> RoomID { RoomID(bytes: RandomBytes.make(length))! }

    public var hex: String { bytes.hexString }
    public var description: String { hex }
}

/// What every member of a room holds once it is in: the room id and the 32-byte room secret.
/// The secret authenticates links among members (resume, probe, partition heal) without the code
/// and without a PAKE (Docs/PROTOCOL.md, "Member handshake").
public struct RoomGrant: Hashable, Sendable {
    public let roomID: RoomID
    public let secret: [UInt8]
    public static let secretLength = 32

    public init?(roomID: RoomID, secret: [UInt8]) {
        guard secret.count == Self.secretLength else { return nil }
        self.roomID = roomID
        self.secret = secret
    }

    /// A new room's id and secret, from the system CSPRNG.
    public static func random() -> RoomGrant {
        RoomGrant(roomID: .random(), secret: RandomBytes.make(secretLength))!
    }
}

/// What a peer knows of a room: always the code it was given or made, and the grant once it is in.
public struct RoomCredentials: Sendable {
    public let code: RoomCode
    public var grant: RoomGrant?

    public init(code: RoomCode, grant: RoomGrant?) {
        self.code = code
        self.grant = grant
    }
}

public enum RandomBytes {
    public static func make(_ count: Int) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}

public enum HexBytes {
    public static func decode(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = nibble(digits[i]), let low = nibble(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}

func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in a.indices { diff |= a[i] ^ b[i] }
    return diff == 0
}

extension Sequence where Element == UInt8 {
    public var hexString: String {
        let digits = Array("0123456789abcdef")
        var out = ""
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return out
    }
}
