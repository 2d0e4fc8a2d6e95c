import Assembly
import DiskImage
import FileSystems

/// The device's CPU architecture as OCI platforms name it (Go's GOARCH), read from the ELF header
/// of the first of `probes` the booted namespace has (symlinks followed): the manifest of an image
/// index the device would run is the one for this architecture.
public struct DeviceArchitecture: Sendable, Equatable {
    /// `amd64`, `arm64`, `arm`, `386`, `riscv64`, `ppc64le`, `s390x`, `mips64le`...
    public var name: String
    /// Where it was read (`/bin/sh`).
    public var source: String

    static let probes = ["/bin/sh", "/usr/bin/env", "/bin/busybox", "/sbin/init"]

    public static func detect(in namespace: NamespaceFileSystem) -> DeviceArchitecture? {
        for path in probes {
            guard let (layer, meta) = namespace.locate(NamespacePath(path)), meta.type == .regular else { continue }
            let header: [UInt8]
            do {
                header = try layer.reader.openFile(layer.inode).readPrefix(20)
            } catch {
                continue   // unreadable here: the next probe, as for a missing one
            }
            if let name = fromELF(header) { return DeviceArchitecture(name: name, source: path) }
        }
        return nil
    }

    /// GOARCH of an ELF header (e_ident: magic, EI_CLASS at 4, EI_DATA at 5; e_machine at 18 in
    /// the file's byte order), nil when it is not ELF or the machine is not one OCI names.
    static func fromELF(_ h: [UInt8]) -> String? {
        guard h.count >= 20, h[0] == 0x7F, h[1] == 0x45, h[2] == 0x4C, h[3] == 0x46 else { return nil }
        let is64 = h[4] == 2, little = h[5] == 1
        guard let machine = ByteCursor(h, context: "ELF header").integerIfPresent(at: 18, endianness: little ? .little : .big, as: UInt16.self) else { return nil }
        switch machine {
        case 0x3E: return "amd64"
        case 0x03: return "386"
        case 0xB7: return "arm64"
        case 0x28: return "arm"
        case 0xF3: return is64 ? "riscv64" : nil
        case 0x15: return little ? "ppc64le" : "ppc64"
        case 0x16: return "s390x"
        case 0x08: return (is64 ? "mips64" : "mips") + (little ? "le" : "")
        case 0x102: return is64 ? "loong64" : nil
        default: return nil
        }
    }
}
