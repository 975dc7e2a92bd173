#if canImport(Glibc)
import Glibc
#endif
import LevChatCore

/// Which cipher a file's bytes go under (Docs/PROTOCOL.md, "Files"): AES-256-GCM where the CPU has
/// AES and carry-less multiplication instructions (x86-64 `aes` and `pclmulqdq`, arm64 `aes` and
/// `pmull`), several times faster there than ChaCha20-Poly1305; elsewhere AES in software is the
/// slower one, and ChaCha20-Poly1305 stays.
enum FileCipher {
    static let fastest: LinkCipher? = hasHardwareAES(cpuinfo: readCPUInfo()) ? .aes256GCM : nil

    /// From /proc/cpuinfo's `flags` (x86) or `Features` (arm) line.
    static func hasHardwareAES(cpuinfo: String) -> Bool {
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") || line.hasPrefix("Features") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            return flags.contains("aes") && (flags.contains("pclmulqdq") || flags.contains("pmull"))
        }
        return false
    }

    private static func readCPUInfo() -> String {
        guard let file = fopen("/proc/cpuinfo", "r") else { return "" }
        defer { fclose(file) }
        var text = ""
        var line = [CChar](repeating: 0, count: 4096)
        // The first processor's lines are enough (every core of a machine has the same flags).
        while text.utf8.count < 64 * 1024, fgets(&line, Int32(line.count), file) != nil {
            let read = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if read == "\n" { break }
            text += read
        }
        return text
    }
}
