import Testing
@testable import LevChatCore

@Suite struct RoomAdvertisementTests {
    static let keys = try! RoomKeys(code: RoomCode(parsing: "ABC-123"), salt: Array(0..<16), cost: KDFCost(logN: 4))
    static let host = NodeID(hex: "0123456789abcdef0123456789abcdef")!

    func pairs(_ txt: [String]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: txt.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        })
    }

    @Test func theTXTRecordCarriesNoSecretAndReadsBack() throws {
        let ad = RoomAdvertisement(keys: Self.keys, host: Self.host, epoch: 3, port: 7000)
        #expect(ad.instanceName == "lc-\(Self.keys.tagHex)-01234567")
        #expect(ad.txtRecord == ["txtvers=1", "pv=1-1", "rs=000102030405060708090a0b0c0d0e0f", "rt=\(Self.keys.tagHex)", "ep=3", "kc=4"])
        #expect(!ad.txtRecord.joined().contains("ABC"))
        let read = try #require(RoomAdvertisement(instanceName: ad.instanceName, port: 7000, txt: pairs(ad.txtRecord)))
        #expect(read == ad)
        #expect(read.matches(Self.keys))
    }

    @Test func productionCostLeavesKcOut() throws {
        var ad = RoomAdvertisement(keys: Self.keys, host: Self.host, epoch: 1, port: 7000)
        ad.kdfLogN = 16
        #expect(!ad.txtRecord.contains { $0.hasPrefix("kc=") })
        #expect(RoomAdvertisement(instanceName: "x", port: 7000, txt: pairs(ad.txtRecord))?.kdfLogN == 16)
    }

    @Test(arguments: [
        ["txtvers": "2"],
        ["pv": "1"], ["pv": "3-1"], ["pv": "a-b"],
        ["rs": "00"], ["rs": "zz" + String(repeating: "0", count: 30)],
        ["rt": "0011"], ["rt": String(repeating: "g", count: 16)],
        ["ep": "-1"], ["ep": "many"], ["ep": String(repeating: "9", count: 40)],
        ["kc": "0"], ["kc": "99"], ["kc": "x"],
    ])
    func malformedRecordsAreSkipped(_ change: [String: String]) {
        var txt = pairs(RoomAdvertisement(keys: Self.keys, host: Self.host, epoch: 1, port: 7000).txtRecord)
        for (key, value) in change { txt[key] = value }
        #expect(RoomAdvertisement(instanceName: "x", port: 7000, txt: txt) == nil)
    }

    @Test func missingKeysOrBadPortsAreSkipped() {
        let txt = pairs(RoomAdvertisement(keys: Self.keys, host: Self.host, epoch: 1, port: 7000).txtRecord)
        for key in ["txtvers", "pv", "rs", "rt", "ep"] {
            var without = txt
            without[key] = nil
            #expect(RoomAdvertisement(instanceName: "x", port: 7000, txt: without) == nil)
        }
        #expect(RoomAdvertisement(instanceName: "x", port: 0, txt: txt) == nil)
    }

    @Test func anotherCodeDoesNotMatch() throws {
        let ad = RoomAdvertisement(keys: Self.keys, host: Self.host, epoch: 1, port: 7000)
        let other = try RoomKeys(code: RoomCode(parsing: "ABC-124"), salt: Array(0..<16), cost: KDFCost(logN: 4))
        #expect(!ad.matches(other))
    }
}
