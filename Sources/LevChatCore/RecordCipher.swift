import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// After the handshake every frame is a record: one kind byte, then (Docs/PROTOCOL.md, "Records")
///
/// - kind 0, link record: `0 ‖ ciphertext ‖ tag(16)`, sealed with the link's key for its
///   direction; the nonce is implicit (4 zero bytes and a 64-bit big-endian counter each direction
///   advances per record) and the associated data is the kind byte. A replayed, reordered or
///   dropped record fails to open and the link closes.
/// - kind 1, broadcast record: `1 ‖ counter(8) ‖ ciphertext ‖ tag(16)`, sealed once for the whole
///   room with the broadcast key of (epoch, host) (`BroadcastKey`); the nonce is 4 zero bytes and
///   the explicit counter, the associated data `1 ‖ epoch(8) ‖ counter(8)`. A member accepts only
///   counters above the last it accepted.
public enum RecordKind: UInt8, Sendable {
    case link = 0
    case broadcast = 1
}

public struct RecordSealer: Sendable {
    private let key: SymmetricKey
    private var counter: UInt64 = 0

    public init(key: SymmetricKey) { self.key = key }

    /// Bytes a link record adds to its plaintext: the kind byte and the tag.
    public static let overhead = 1 + 16

    public mutating func seal(_ plaintext: some DataProtocol) throws(RecordError) -> [UInt8] {
        defer { counter += 1 }
        return try Record.seal(plaintext, header: [RecordKind.link.rawValue], key: key, counter: counter,
                               associatedData: Record.linkAssociatedData)
    }
}

public struct RecordOpener: Sendable {
    private let key: SymmetricKey
    private var counter: UInt64 = 0

    public init(key: SymmetricKey) { self.key = key }

    /// Opens a link record (kind byte included).
    public mutating func open(_ record: [UInt8]) throws(RecordError) -> [UInt8] {
        guard record.count >= RecordSealer.overhead else { throw .tooShort }
        guard record[0] == RecordKind.link.rawValue else { throw .unknownKind(record[0]) }
        let plain = try Record.open(record, headerLength: 1, key: key, counter: counter, associatedData: Record.linkAssociatedData)
        counter += 1
        return plain
    }
}

/// The room's broadcast key for one host at one epoch and one generation of the room secret:
/// HKDF-SHA-256 with that secret as input key material, no salt, and info
/// `levchat/3/broadcast ‖ room id(8) ‖ generation(8) ‖ epoch(8) ‖ host node(16)`. Every member
/// derives it from its `welcome` (and each `rekey`); nobody without that generation's secret, or
/// an earlier one, can.
public enum BroadcastKey {
    public static func derive(grant: RoomGrant, epoch: Int, host: NodeID) -> SymmetricKey {
        var info = Array("levchat/3/broadcast".utf8)
        info += grant.roomID.bytes
        info += BigEndian.bytes(UInt64(grant.generation))
        info += BigEndian.bytes(UInt64(epoch))
        info += host.bytes
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: grant.secret), info: info, outputByteCount: 32)
    }
}

/// Seals what the host sends to every member once per broadcast, whatever the room's size.
public struct BroadcastSealer: Sendable {
    private let key: SymmetricKey
    public let epoch: Int
    private var counter: UInt64 = 0

    public init(grant: RoomGrant, epoch: Int, host: NodeID) {
        key = BroadcastKey.derive(grant: grant, epoch: epoch, host: host)
        self.epoch = epoch
    }

    /// Bytes a broadcast record adds to its plaintext: kind, counter and tag.
    public static let overhead = 1 + 8 + 16

    public mutating func seal(_ plaintext: some DataProtocol) throws(RecordError) -> [UInt8] {
        defer { counter += 1 }
        return try Record.seal(plaintext, header: [RecordKind.broadcast.rawValue] + BigEndian.bytes(counter), key: key, counter: counter,
                               associatedData: Record.broadcastAssociatedData(epoch: epoch, counter: counter))
    }
}

/// A member's side: opens broadcast records of one (epoch, host), counters rising only.
public struct BroadcastOpener: Sendable {
    private let key: SymmetricKey
    public let epoch: Int
    private var last: UInt64?

    public init(grant: RoomGrant, epoch: Int, host: NodeID) {
        key = BroadcastKey.derive(grant: grant, epoch: epoch, host: host)
        self.epoch = epoch
    }

    public mutating func open(_ record: [UInt8]) throws(RecordError) -> [UInt8] {
        guard record.count >= BroadcastSealer.overhead else { throw .tooShort }
        guard record[0] == RecordKind.broadcast.rawValue else { throw .unknownKind(record[0]) }
        let counter = BigEndian.uint64(record[1..<9])
        if let last, counter <= last { throw .staleCounter(counter, last: last) }
        let plain = try Record.open(record, headerLength: 9, key: key, counter: counter,
                                    associatedData: Record.broadcastAssociatedData(epoch: epoch, counter: counter))
        last = counter
        return plain
    }
}

/// ChaCha20-Poly1305 of both kinds: `header ‖ ciphertext ‖ tag`, the nonce 4 zero bytes and the
/// counter.
enum Record {
    static let linkAssociatedData: [UInt8] = [RecordKind.link.rawValue]

    static func broadcastAssociatedData(epoch: Int, counter: UInt64) -> [UInt8] {
        [RecordKind.broadcast.rawValue] + BigEndian.bytes(UInt64(epoch)) + BigEndian.bytes(counter)
    }

    static func seal(_ plaintext: some DataProtocol, header: [UInt8], key: SymmetricKey, counter: UInt64,
                     associatedData: [UInt8]) throws(RecordError) -> [UInt8] {
        let nonce = try nonce(counter)
        do {
            let box = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: associatedData)
            var out = header
            out.reserveCapacity(header.count + box.ciphertext.count + 16)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
            return out
        } catch {
            throw .sealFailed
        }
    }

    /// Opens `record` after its `headerLength` bytes; the caller checked it is long enough.
    static func open(_ record: [UInt8], headerLength: Int, key: SymmetricKey, counter: UInt64,
                     associatedData: [UInt8]) throws(RecordError) -> [UInt8] {
        let nonce = try nonce(counter)
        let split = record.count - 16
        do {
            let box = try ChaChaPoly.SealedBox(nonce: nonce, ciphertext: record[headerLength..<split], tag: record[split...])
            return Array(try ChaChaPoly.open(box, using: key, authenticating: associatedData))
        } catch {
            throw .authenticationFailed
        }
    }

    static func nonce(_ counter: UInt64) throws(RecordError) -> ChaChaPoly.Nonce {
        guard counter < UInt64.max else { throw .counterExhausted }
        // 12 bytes is always a valid ChaChaPoly nonce.
        return try! ChaChaPoly.Nonce(data: [0, 0, 0, 0] + BigEndian.bytes(counter))
    }
}

enum BigEndian {
    static func bytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    static func uint64(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

public enum RecordError: Error, Equatable, CustomStringConvertible {
    case tooShort
    case authenticationFailed
    case counterExhausted
    case sealFailed
    case unknownKind(UInt8)
    /// A broadcast record whose counter is not above the last one accepted (a replay).
    case staleCounter(UInt64, last: UInt64)
    /// A broadcast record to a host, or to a member before the welcome that gives its key.
    case unexpectedBroadcast

    public var description: String {
        switch self {
        case .tooShort: "encrypted record shorter than its header and tag"
        case .authenticationFailed: "encrypted record failed authentication (tampered, replayed, reordered or of another epoch)"
        case .counterExhausted: "record counter exhausted"
        case .sealFailed: "could not encrypt a record"
        case .unknownKind(let kind): "record of unknown kind \(kind)"
        case .staleCounter(let counter, let last): "broadcast record with counter \(counter), not above the last one (\(last))"
        case .unexpectedBroadcast: "broadcast record where none is expected (only a host sends them, after its welcome)"
        }
    }
}
