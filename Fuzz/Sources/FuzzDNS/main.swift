import FuzzDriver
import LevChatCore

/// Any packet that reaches UDP 5353 on the LAN: `DNSMessage(decoding:)` must refuse it or read it,
/// and what it reads must write out and read back the same.
func fuzzDNS(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let packet = UnsafeBufferPointer(start: data, count: size)
    guard let message = try? DNSMessage(decoding: packet) else { return 0 }
    let bytes: [UInt8]
    do { bytes = try message.encoded() } catch {
        // Names that pointed into a record's raw data or into a label are written out whole, so
        // a message read from 9,000 bytes may not fit in 9,000 again; nothing else may fail.
        guard case .tooLong = error else { fatalError("a message read from \(size) bytes does not write out: \(error)") }
        return 0
    }
    guard let again = try? DNSMessage(decoding: bytes), again == message else {
        fatalError("a message does not read back: \(message)")
    }
    return 0
}

runFuzzer { data, size in fuzzDNS(data, size) }
