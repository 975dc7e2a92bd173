import Crypto
import CryptoExtras
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Cost of the scrypt derivation that turns a room code into the room key.
///
/// Production uses N = 2^16, r = 8, p = 1. It travels in the host's challenge so joiners use the
/// creator's cost, and joiners refuse anything cheaper than their own minimum (a fake host must not
/// be able to make a proof cheap to brute-force).
public struct KDFCost: Codable, Hashable, Sendable {
    public var logN: Int
    public var r: Int
    public var p: Int

    public init(logN: Int, r: Int = 8, p: Int = 1) {
        self.logN = logN
        self.r = r
        self.p = p
    }

    public static let production = KDFCost(logN: 16)
    /// Upper bound we accept from a host: 2^20 * 128 * 8 bytes is already 1 GiB of memory.
    public static let maximumLogN = 20

    public var isAcceptableFromHost: Bool {
        (1...KDFCost.maximumLogN).contains(logN) && r == 8 && p == 1
    }
}

/// The room key and everything derived from it (DESIGN §4).
public struct RoomKeys: Sendable {
    public let salt: [UInt8]
    public let cost: KDFCost
    /// Public 8-byte room tag advertised as `rt`; lets joiners pick their room without the code.
    public let tag: [UInt8]
    let roomKey: SymmetricKey
    let authKey: SymmetricKey

    public static let saltLength = 16

    /// Runs scrypt; at production cost this takes a noticeable fraction of a second, so callers
    /// derive once per (code, salt) and reuse.
    public init(code: RoomCode, salt: [UInt8], cost: KDFCost) throws {
        self.salt = salt
        self.cost = cost
        let key = try KDF.Scrypt.deriveKey(
            from: Array(code.canonical.utf8), salt: salt, outputByteCount: 32,
            rounds: 1 << cost.logN, blockSize: cost.r, parallelism: cost.p)
        self.roomKey = key
        self.tag = Array(RoomKeys.expand(key, info: "levchat/v1/tag", count: 8))
        self.authKey = SymmetricKey(data: RoomKeys.expand(key, info: "levchat/v1/auth", count: 32))
    }

    public static func randomSalt() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<saltLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    public var tagHex: String { tag.hexString }

    /// Proof that one side knows the code, bound to this connection's transcript.
    func proof(role: HandshakeRole, transcript: [UInt8]) -> [UInt8] {
        var mac = HMAC<SHA256>(key: authKey)
        mac.update(data: Array(role.rawValue.utf8))
        mac.update(data: [0])
        mac.update(data: transcript)
        return Array(mac.finalize())
    }

    func verify(proof: [UInt8], role: HandshakeRole, transcript: [UInt8]) -> Bool {
        constantTimeEqual(self.proof(role: role, transcript: transcript), proof)
    }

    /// Per-connection, per-direction traffic keys, bound to the handshake transcript.
    func trafficKeys(transcript: [UInt8]) -> (clientToHost: SymmetricKey, hostToClient: SymmetricKey) {
        let c2s = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: roomKey, salt: transcript, info: Array("levchat/v1/c2s".utf8), outputByteCount: 32)
        let s2c = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: roomKey, salt: transcript, info: Array("levchat/v1/s2c".utf8), outputByteCount: 32)
        return (c2s, s2c)
    }

    static func expand(_ key: SymmetricKey, info: String, count: Int) -> [UInt8] {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: key, info: Array(info.utf8), outputByteCount: count)
        return derived.withUnsafeBytes { Array($0) }
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
