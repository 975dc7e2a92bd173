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

/// What every member of a room holds once it is in: the room id, the 32-byte room secret and the
/// secret's generation. The secret authenticates links among members (resume, probe, partition
/// heal) without the code and without a PAKE, and keys the host's broadcasts (Docs/PROTOCOL.md,
/// "Member handshake", "The ratchet").
///
/// The secret moves forward one way: generation g+1's secret is HKDF of generation g's, at every
/// join and every host change, and a peer keeps only its newest. So a peer given a generation's
/// secret (a newcomer, or whoever learns the code later and joins) can compute every later one and
/// no earlier one: broadcasts recorded before it joined stay closed to it. When a member leaves or
/// is lost (and when a promoted host's collection window closes) the next generation is `fresh()`
/// instead, sent to each remaining member over its own link: the one who left cannot follow.
public struct RoomGrant: Hashable, Sendable {
    public let roomID: RoomID
    public let secret: [UInt8]
    public let generation: Int
    public static let secretLength = 32
    /// The most generations a peer moves forward in one step (a bound on the HKDF work a peer
    /// can make another do).
    public static let maximumStep = 10_000

    public init?(roomID: RoomID, secret: [UInt8], generation: Int = 0) {
        guard secret.count == Self.secretLength, generation >= 0 else { return nil }
        self.roomID = roomID
        self.secret = secret
        self.generation = generation
    }

    /// A new room's id and secret, from the system CSPRNG.
    public static func random() -> RoomGrant {
        RoomGrant(roomID: .random(), secret: RandomBytes.make(secretLength))!
    }

    /// This grant moved forward to `target`; nil for a generation behind this one or too far
    /// ahead.
    public func ratcheted(to target: Int) -> RoomGrant? {
        guard target >= generation, target - generation <= Self.maximumStep else { return nil }
        var secret = self.secret
        for next in (generation + 1)...max(generation + 1, target) where next <= target {
            secret = Ratchet.step(secret, room: roomID, to: next)
        }
        return RoomGrant(roomID: roomID, secret: secret, generation: target)
    }

    /// The next generation with a fresh random secret (after a departure: nothing the one who
    /// left holds leads to it).
    public func fresh() -> RoomGrant {
        RoomGrant(roomID: roomID, secret: RandomBytes.make(Self.secretLength), generation: generation + 1)!
    }

    /// Whether a host may move a member from this grant to `other`: the same room, and never back.
    /// (A fresh secret does not follow from the old one; the authenticated host link vouches for it.)
    public func mayMove(to other: RoomGrant) -> Bool {
        other.roomID == roomID && other.generation >= generation
    }

    /// Whether `other` is this grant or one of its later generations.
    public func leads(to other: RoomGrant) -> Bool {
        other.roomID == roomID && ratcheted(to: other.generation)?.secret == other.secret
    }
}

/// One step of the room secret's ratchet: HKDF-SHA-256 with the secret as input key material,
/// no salt, info `levchat/3/ratchet ‖ room id (8) ‖ next generation (8, big endian)`, 32 bytes.
public enum Ratchet {
    public static func step(_ secret: [UInt8], room: RoomID, to generation: Int) -> [UInt8] {
        let info = Array("levchat/3/ratchet".utf8) + room.bytes + BigEndian.bytes(UInt64(generation))
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret), info: info, outputByteCount: 32)
        return key.withUnsafeBytes { Array($0) }
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
    /// From the string's own UTF-8 into one array (the host turns a node id into bytes per line).
    public static func decode(_ hex: String) -> [UInt8]? {
        var hex = hex
        return hex.withUTF8 { digits -> [UInt8]? in
            guard digits.count % 2 == 0 else { return nil }
            var valid = true
            let out = [UInt8](unsafeUninitializedCapacity: digits.count / 2) { out, written in
                written = 0
                for i in 0..<digits.count / 2 {
                    guard let high = nibble(digits[2 * i]), let low = nibble(digits[2 * i + 1]) else { valid = false; return }
                    out[i] = high << 4 | low
                    written = i + 1
                }
            }
            return valid ? out : nil
        }
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
    /// Lower-case hex. Built as bytes, then one string: node ids are shown this way for every
    /// record a member opens (Docs/BENCHMARKS.md, "Text of keys and ids").
    public var hexString: String {
        var out: [UInt8] = []
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0xF))
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The ASCII digit of a nibble: 0-9, then a-f.
@inline(__always) private func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
}
