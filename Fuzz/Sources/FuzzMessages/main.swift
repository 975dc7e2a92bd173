import FuzzDriver
import Foundation
import LevChatCore

/// Every message decoder, JSON and binary, and the records around them: no input may crash, and
/// whatever decodes must encode to something that decodes to the same message (both forms). The
/// same bytes as text go through the parsers of what peers and files give (names, known_peers,
/// the offers file, a file's offer, a file's name made safe).
func fuzzMessages(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // An opened record's `Data` decodes as its bytes do (the two entry points share one decoder
    // that reads where the bytes lie).
    let fromArray = Result { () throws(MessageError) in try WireMessage.decode(bytes) }
    let fromData = Result { () throws(MessageError) in try WireMessage.decode(Data(bytes)) }
    guard fromArray == fromData else { fatalError("decoding an array and its Data disagree: \(bytes)") }
    if let message = try? WireMessage.decode(bytes) {
        // Encoding is stable: after one round (a JSON `kind: 0` or `late: false` reads back as
        // their absence), a message survives each of its forms unchanged.
        for encode in [{ (m: WireMessage) in m.encoded() }, { (m: WireMessage) in m.jsonEncoded() }] {
            guard let once = try? WireMessage.decode(encode(message)), let twice = try? WireMessage.decode(encode(once)),
                  once == twice || once.typeName == "unknown" else {
                fatalError("\(message.typeName) does not survive its own encoding: \(encode(message))")
            }
        }
    }
    // The same bytes as records of either kind, with fixed keys: only errors, never a crash.
    var opener = FuzzKeys.linkOpener
    _ = try? opener.open(bytes)
    var broadcasts = FuzzKeys.broadcastOpener
    _ = try? broadcasts.open(bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    _ = Base64.decode(text)
    // The protocol 3 parsers of text a peer or a file gives: names and their look-alike key,
    // known_peers, the offers file, a source address's /64. A name valid once is valid as it stands.
    if let name = try? NameRule.validate(text) {
        guard NameRule.isValid(name), NameRule.sameName(name, name) else { fatalError("a valid name is not itself: \(name)") }
    }
    let peers = KnownPeers(parsing: text)
    guard KnownPeers(parsing: peers.text) == peers else { fatalError("known_peers does not survive its own text") }
    let offers = OfferedFiles(parsing: text)
    guard offers.entries.count <= OfferedFiles.kept, OfferedFiles(parsing: offers.text) == offers else {
        fatalError("the offers file does not survive its own text")
    }
    _ = GuessBudget.source(of: text)
    // A file's offer as a signed room message carries it, and any name a sender may give: an
    // offer that parses survives its own text; a name made safe is one safe component, and safe
    // names are left as they are.
    if let offer = FileOffer(text: text), FileOffer(text: offer.text) != offer {
        fatalError("an offer does not survive its own text: \(offer)")
    }
    let safe = SafeFileName.make(text)
    guard !safe.isEmpty, safe.utf8.count <= 200, safe.unicodeScalars.first != ".",
          safe.unicodeScalars.first?.properties.isWhitespace == false, safe.unicodeScalars.last?.properties.isWhitespace == false,
          !safe.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }),
          SafeFileName.make(safe) == safe else {
        fatalError("an unsafe name \(Array(safe.utf8)) from \(bytes)")
    }
    return 0
}

enum FuzzKeys {
    static let grant = RoomGrant(roomID: RoomID(hex: "0011223344556677")!, secret: Array(repeating: 7, count: 32))!
    static let linkOpener = RecordOpener(key: .init(data: Array(repeating: 1, count: 32)))
    static let broadcastOpener = BroadcastOpener(grant: grant, epoch: 1, host: NodeID(hex: String(repeating: "ab", count: 16))!)
}

runFuzzer { data, size in fuzzMessages(data, size) }
