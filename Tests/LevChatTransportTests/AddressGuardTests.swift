import Synchronization
import Testing
@testable import LevChatTransport

/// The cap on unfinished handshakes per source address (Docs/THREAT-MODEL.md, "Connection floods").
struct AddressGuardTests {
    @Test func eachAddressHasItsOwnCapAndIsReportedOncePerFlood() {
        let reports = Mutex<[String]>([])
        let guard_ = AddressGuard(onFlooded: { address in reports.withLock { $0.append(address) } }) { _, _ in }
        let cap = AddressGuard.maxUnfinishedPerAddress
        for _ in 0..<cap { #expect(guard_.beginHandshake(from: "10.0.0.9")) }
        #expect(!guard_.beginHandshake(from: "10.0.0.9"))
        #expect(guard_.beginHandshake(from: "10.0.0.8"))  // another address is not affected
        #expect(reports.withLock { $0 } == ["10.0.0.9"])
        // One ends and another starts: back at the cap, but the same flood, so no second report.
        guard_.endHandshake(from: "10.0.0.9")
        #expect(guard_.beginHandshake(from: "10.0.0.9"))
        #expect(reports.withLock { $0 } == ["10.0.0.9"])
        // Once all of them have ended, a new flood is reported again.
        for _ in 0..<cap { guard_.endHandshake(from: "10.0.0.9") }
        for _ in 0..<cap { #expect(guard_.beginHandshake(from: "10.0.0.9")) }
        #expect(reports.withLock { $0 } == ["10.0.0.9", "10.0.0.9"])
    }
}
