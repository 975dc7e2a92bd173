import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// ChaCha20-Poly1305 records with an implicit nonce: 4 zero bytes and a 64-bit big-endian counter
/// that each direction advances per record. The nonce is never sent, so a replayed, reordered or
/// dropped record fails to open and the link closes.
///
/// Record on the wire: `ciphertext || tag(16)`.
public struct RecordSealer: Sendable {
    private let key: SymmetricKey
    private var counter: UInt64 = 0

    public init(key: SymmetricKey) { self.key = key }

    public static let overhead = 16

    public mutating func seal(_ plaintext: some DataProtocol) throws(RecordError) -> [UInt8] {
        let nonce = try RecordCipherNonce.make(counter)
        counter += 1
        do {
            let box = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce)
            var out = [UInt8]()
            out.reserveCapacity(box.ciphertext.count + RecordSealer.overhead)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
            return out
        } catch {
            throw .sealFailed
        }
    }
}

public struct RecordOpener: Sendable {
    private let key: SymmetricKey
    private var counter: UInt64 = 0

    public init(key: SymmetricKey) { self.key = key }

    public mutating func open(_ record: [UInt8]) throws(RecordError) -> [UInt8] {
        guard record.count >= RecordSealer.overhead else { throw .tooShort }
        let nonce = try RecordCipherNonce.make(counter)
        let split = record.count - RecordSealer.overhead
        do {
            let box = try ChaChaPoly.SealedBox(
                nonce: nonce, ciphertext: record[..<split], tag: record[split...])
            let plain = try ChaChaPoly.open(box, using: key)
            counter += 1
            return Array(plain)
        } catch {
            throw .authenticationFailed
        }
    }
}

enum RecordCipherNonce {
    static func make(_ counter: UInt64) throws(RecordError) -> ChaChaPoly.Nonce {
        guard counter < UInt64.max else { throw .counterExhausted }
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(i))) }
        // 12 bytes is always a valid ChaChaPoly nonce.
        return try! ChaChaPoly.Nonce(data: bytes)
    }
}

public enum RecordError: Error, Equatable, CustomStringConvertible {
    case tooShort
    case authenticationFailed
    case counterExhausted
    case sealFailed

    public var description: String {
        switch self {
        case .tooShort: "encrypted record shorter than its tag"
        case .authenticationFailed: "encrypted record failed authentication (tampered, replayed or reordered)"
        case .counterExhausted: "record counter exhausted"
        case .sealFailed: "could not encrypt a record"
        }
    }
}
