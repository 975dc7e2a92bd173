import FuzzDriver
import LevChatCore

/// The TXT record and instance name of an advertisement, as anyone on the LAN can publish them:
/// the bytes are split into an instance name and `key=value` strings.
func fuzzDiscovery(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let instance = lines.isEmpty ? "" : lines.removeFirst()
    var txt: [String: String] = [:]
    for line in lines {
        let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        txt[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
    }
    if let advertisement = RoomAdvertisement(instanceName: instance, port: 7000, txt: txt) {
        // What parses must read back from what it would publish.
        var published: [String: String] = [:]
        for pair in advertisement.txtRecord {
            let parts = pair.split(separator: "=", maxSplits: 1)
            published[String(parts[0])] = String(parts[1])
        }
        guard RoomAdvertisement(instanceName: advertisement.instanceName, port: 7000, txt: published) == advertisement else {
            fatalError("an advertisement does not read back: \(advertisement)")
        }
    }
    return 0
}

runFuzzer { data, size in fuzzDiscovery(data, size) }
