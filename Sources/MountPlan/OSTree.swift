import DiskImage
import FileSystems

/// OSTree (field guide §5): the booted deployment, named by `ostree=` in the boot loader entries,
/// is bind-mounted as "/"; the physical root stays at /sysroot, its /boot at /boot, and /var is
/// the OS's shared /ostree/deploy/<os>/var.
enum OSTreeProfile {
    struct Entry {
        var file: String
        var version: String
        var ostree: String
    }

    /// Boot loader entries (`/boot/loader/entries/*.conf`, Boot Loader Specification) with an
    /// `ostree=` kernel argument, the one that boots first: highest `version`, then file name.
    static func entries(in fs: any FileSystemReader, warnings: inout [String]) -> [Entry] {
        BootLoaderEntries.read(in: fs, directory: "/boot/loader/entries", warnings: &warnings).compactMap { e in
            KernelCommandLine.value("ostree", in: e.options).map { Entry(file: e.file, version: e.version, ostree: $0) }
        }
    }

}

/// Boot Loader Specification entries (`*.conf` in a `loader/entries` directory): the kernel
/// command line (`options`) of each, in boot order.
enum BootLoaderEntries {
    struct Entry {
        var file: String
        var version: String
        /// The `options` lines joined (the kernel command line without the `linux` path).
        var options: String
    }

    /// The entries in `directory`, the one that boots first first: highest `version`, then file name.
    static func read(in fs: any FileSystemReader, directory: String, warnings: inout [String]) -> [Entry] {
        var result: [Entry] = []
        for name in ProfilePaths.names(in: directory, of: fs, warnings: &warnings) where name.hasSuffix(".conf") {
            let file = "\(directory)/\(name)"
            guard let text = ProfilePaths.text(file, in: fs, limit: 1 << 20, warnings: &warnings) else { continue }
            var version = ""
            var options: [String] = []
            for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
                let t = line.trimmingCharacters(in: " \t")
                if t.hasPrefix("version ") { version = t.dropFirst(8).trimmingCharacters(in: " \t") }
                if t.hasPrefix("options ") { options.append(String(t.dropFirst(8))) }
            }
            result.append(Entry(file: file, version: version, options: options.joined(separator: " ")))
        }
        return result.sorted { a, b in
            let c = compareVersions(a.version, b.version)
            return c != 0 ? c > 0 : a.file < b.file
        }
    }

    /// Version comparison as the Boot Loader Specification sorts: digit runs numerically.
    static func compareVersions(_ a: String, _ b: String) -> Int {
        func parts(_ s: String) -> [Either] {
            var out: [Either] = []
            var current = ""
            var digits = false
            for c in s {
                let isDigit = c.isASCII && c.isNumber
                if !current.isEmpty, isDigit != digits {
                    out.append(digits ? .number(Int(current.prefix(18)) ?? 0) : .text(current))
                    current = ""
                }
                digits = isDigit
                current.append(c)
            }
            if !current.isEmpty { out.append(digits ? .number(Int(current.prefix(18)) ?? 0) : .text(current)) }
            return out
        }
        let pa = parts(a), pb = parts(b)
        for (x, y) in zip(pa, pb) {
            switch (x, y) {
            case (.number(let m), .number(let n)) where m != n: return m < n ? -1 : 1
            case (.text(let m), .text(let n)) where m != n: return m < n ? -1 : 1
            case (.number, .text): return 1
            case (.text, .number): return -1
            default: continue
            }
        }
        return pa.count == pb.count ? 0 : (pa.count < pb.count ? -1 : 1)
    }

    enum Either { case number(Int), text(String) }
}

extension OSTreeProfile {
    static func bootedRoot(root: RootChoice, physical fs: any FileSystemReader) -> (root: BootedRoot?, warnings: [String]) {
        var warnings: [String] = []
        func fail(_ why: String) -> (root: BootedRoot?, warnings: [String]) {
            (nil, warnings + ["OSTree: \(why); the plan uses the root partition itself as /"])
        }
        let all = entries(in: fs, warnings: &warnings)
        guard let entry = all.first else { return fail("no /boot/loader/entries/*.conf with an ostree= argument") }
        guard let deployment = ProfilePaths.canonical(entry.ostree, in: fs, warnings: &warnings) else {
            return fail("\(entry.file): ostree=\(entry.ostree) does not lead to a directory")
        }
        // /ostree/deploy/<os>/deploy/<checksum>.<serial>
        let parts = deployment.split(separator: "/").map(String.init)
        guard parts.count == 5, parts[0] == "ostree", parts[1] == "deploy", parts[3] == "deploy",
              let inode = ProfilePaths.directory(deployment, in: fs, warnings: &warnings) else {
            return fail("\(entry.file): ostree=\(entry.ostree) leads to \(deployment), not /ostree/deploy/<os>/deploy/<checksum>.<serial>")
        }
        let os = parts[2]
        let rank = all.count > 1 ? ", version \(entry.version), first of \(all.count) entries" : ""
        let declared = "\(entry.file)\(rank): ostree=\(entry.ostree) -> \(deployment)"
        var mounts = [
            PlannedMount(where: "/", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "", source: .other(root.reason)),
            PlannedMount(where: "/", kind: .bind, options: "bind", what: deployment, source: .other(declared)),
            PlannedMount(where: "/sysroot", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                         source: .other("OSTree: the physical root stays visible at /sysroot")),
        ]
        if ProfilePaths.exists("/boot", in: fs, warnings: &warnings) {
            mounts.append(PlannedMount(where: "/boot", kind: .bind, options: "bind", what: "/sysroot/boot",
                                       source: .other("OSTree: the physical root's /boot")))
        }
        let varPath = "/ostree/deploy/\(os)/var"
        if ProfilePaths.exists(varPath, in: fs, warnings: &warnings) {
            mounts.append(PlannedMount(where: "/var", kind: .bind, options: "bind", what: "/sysroot" + varPath,
                                       source: .other("OSTree: the shared /var of os \(os)")))
        } else {
            warnings.append("OSTree: \(varPath) does not exist; /var not bound")
        }
        return (BootedRoot(mounts: mounts, config: SubtreeFileSystem(base: fs, root: inode, name: "\(fs.sourceName) deployment \(parts[4])")),
                warnings)
    }
}
