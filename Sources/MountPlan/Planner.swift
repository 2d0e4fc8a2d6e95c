import Assembly
import DiskImage
import FileSystemBtrfs
import FileSystems

/// Works out, deterministically, the mounts the booted device performs: the root slot, then
/// fstab and enabled systemd mount units, ordered as the kernel stacks them.
public enum Planner {
    /// Plans the disk's boot. Throws only when no root can be found; everything else becomes
    /// warnings and skipped mounts.
    public static func plan(_ disk: any PlanningDisk, options: PlanOptions = PlanOptions()) throws -> Plan {
        var selector = RootSelector(disk: disk)
        var root = try selector.choose(options: options)
        var found = Findings(warnings: selector.warnings)
        guard var rootFS = try disk.fileSystem(partition: root.partition) else {
            throw FWError(.unsupported, "the root partition \(root.partition) has no filesystem fwassemble can read")
        }
        // btrfs: the subvolume mounted as "/" (rootflags=subvol=, else the default subvolume).
        var rootOptions = ""
        if let btrfs = rootFS as? BtrfsReader, let subvolume = BtrfsMounts.bootedRoot(disk: disk, partition: root.partition, reader: btrfs) {
            rootFS = subvolume.view
            rootOptions = subvolume.options
            root.reason += "; " + subvolume.reason
            found.warnings += subvolume.warnings
        }
        let profile = FirmwareProfile.detect(disk: disk, root: rootFS)
        found.warnings += profile.warnings
        // The booted root (a balenaOS hostapp overlay, an OSTree deployment, or the root
        // partition itself) and the view its configuration is read from.
        let booted = profile.bootedRoot(disk: disk, root: root, physical: rootFS, options: rootOptions)
        found.warnings += booted.warnings

        found.readFstab(booted.config)
        if profile.family == .openwrt { found.readUCIFstab(booted.config) }
        found.readUnits(booted.config, profile: profile, disk: disk)
        let (chosen, order) = found.oneDeclarationPerMountPoint()
        let resolver = DeviceResolver(partitions: disk.partitions, rootPartition: root.partition)
        var mounts: [PlannedMount] = []
        for key in order {
            guard let c = chosen[key] else { continue }
            switch classify(c, key: key, resolver: resolver, disk: disk) {
            case .mount(let m, let note):
                mounts.append(m)
                if let note { found.warnings.append("\(c.declaredBy): \(note)") }
            case .skip(let reason, let warn):
                found.skipped.append(SkippedMount(where: key, reason: reason, declaredBy: c.declaredBy))
                if warn { found.warnings.append("\(c.declaredBy): \(key): \(reason)") }
            case .rootItself:
                continue
            }
        }
        let final = found.keepingResolvableBinds(orderMounts(mounts), after: booted.mounts, disk: disk)
        return Plan(root: root, mounts: final, skipped: found.skipped.sorted { ($0.where, $0.reason) < ($1.where, $1.reason) },
                    warnings: found.warnings, profile: profile.family.rawValue)
    }

    /// What planning has found so far: declared mounts, skipped ones and warnings.
    struct Findings {
        var candidates: [Candidate] = []
        var skipped: [SkippedMount] = []
        var warnings: [String]

        /// fstab (systemd-fstab-generator: its units rank below /etc/systemd/system, above
        /// /usr/lib). An fstab that exists but cannot be read (a symlink loop or a 10,000-link
        /// chain, a damaged inode) is a warning, not a silently empty fstab.
        mutating func readFstab(_ configFS: any FileSystemReader) {
            do {
                if let inode = try configFS.lookup(Array("/etc/fstab".utf8), followLast: true) {
                    let bytes = try configFS.readSmallFile(inode, limit: 1 << 20)
                    let (entries, w) = Fstab.parse(bytes, file: "/etc/fstab")
                    warnings += w.map(\.description)
                    for e in entries {
                        candidates.append(Candidate(where: e.mountPoint, what: e.spec, type: e.type, options: e.options,
                                                    source: .fstab(file: "/etc/fstab", line: e.line), rank: 1, noauto: e.isNoAuto))
                    }
                }
            } catch {
                warnings.append("/etc/fstab: \(FWError(error).message); not used")
            }
        }

        /// OpenWrt's UCI /etc/config/fstab (block-mount): enabled `config mount` sections as
        /// fstab lines (device by uuid, label or path, resolved as fstab's), disabled ones and
        /// `config swap` sections skipped and reported. The extroot (target /overlay) is the
        /// OpenWrt profile's: it replaces rootfs_data before anything else is mounted.
        mutating func readUCIFstab(_ configFS: any FileSystemReader) {
            guard let fstab = UCIFstab.read(from: configFS, warnings: &warnings) else { return }
            warnings += fstab.warnings.map(\.description)
            for e in fstab.entries {
                let declared = e.source.description
                guard e.kind == .mount else {
                    skipped.append(SkippedMount(where: "swap", reason: "swap on \(e.device ?? "no device")\(e.enabled ? "" : " (disabled)")",
                                                declaredBy: declared))
                    continue
                }
                guard let target = e.target else {
                    warnings.append("\(declared): config mount without a target; ignored")
                    continue
                }
                guard e.enabled else {
                    skipped.append(SkippedMount(where: normalise(target), reason: "disabled (option enabled '0')", declaredBy: declared))
                    continue
                }
                if e.isExtroot { continue }
                guard let device = e.device else {
                    warnings.append("\(declared): \(target): no uuid, label or device; not mounted")
                    skipped.append(SkippedMount(where: normalise(target), reason: "no uuid, label or device", declaredBy: declared))
                    continue
                }
                candidates.append(Candidate(where: target, what: device, type: e.fstype ?? "auto", options: e.options,
                                            source: e.source, rank: 1, noauto: false))
            }
        }

        /// systemd mount units and their enablement (and balenaOS's mounting services).
        mutating func readUnits(_ configFS: any FileSystemReader, profile: FirmwareProfile, disk: any PlanningDisk) {
            let loader = UnitLoader(fs: configFS)
            let enabled = loader.enabledUnits()
            if profile.family == .balenaos {
                let services = BalenaProfile.serviceCandidates(loader: loader, enabled: enabled, partitions: disk.partitions)
                candidates += services.candidates
                skipped += services.skipped
            }
            for name in loader.allMountUnitNames() where !name.hasSuffix(".automount") {
                // An .automount is handled through its .mount.
                readMountUnit(name, loader: loader, enabled: enabled)
            }
            warnings += loader.warnings.map(\.description)
        }

        private mutating func readMountUnit(_ name: String, loader: UnitLoader, enabled: Set<String>) {
            let automount = String(name.dropLast(".mount".count)) + ".automount"
            let expectedWhere = SystemdName.unescapePath(name)
            switch loader.load(name) {
            case .missing:
                return
            case .masked(let path):
                skipped.append(SkippedMount(where: expectedWhere, reason: "unit masked", declaredBy: path))
            case .unit(let unit):
                let declared = unit.path
                guard let whereValue = unit.value("Mount", "Where") else {
                    warnings.append("\(declared): no Where=; unit ignored")
                    return
                }
                guard normalise(whereValue) == expectedWhere else {
                    warnings.append("\(declared): Where=\(whereValue) does not match the unit name (\(expectedWhere)); systemd refuses such a unit; skipped")
                    skipped.append(SkippedMount(where: whereValue, reason: "Where= disagrees with the unit name", declaredBy: declared))
                    return
                }
                let isEnabled = enabled.contains(name) || (enabled.contains(automount) && loader.isLoadable(automount))
                guard isEnabled else {
                    skipped.append(SkippedMount(where: expectedWhere, reason: "unit not enabled", declaredBy: declared))
                    return
                }
                let rank = declared.hasPrefix("/etc/") || declared.hasPrefix("/run/") ? 0 : 2
                let options = (unit.value("Mount", "Options") ?? "").split(separator: ",").map(String.init)
                candidates.append(Candidate(where: whereValue, what: unit.value("Mount", "What") ?? "",
                                            type: unit.value("Mount", "Type") ?? "auto", options: options,
                                            source: .unit(file: declared), rank: rank, noauto: false))
            }
        }

        /// One declaration per mount point: /etc units over fstab over /usr/lib units.
        mutating func oneDeclarationPerMountPoint() -> (chosen: [String: Candidate], order: [String]) {
            var chosen: [String: Candidate] = [:]
            var order: [String] = []
            for c in candidates {
                let key = normalise(c.where)
                if let existing = chosen[key] {
                    if c.rank < existing.rank { chosen[key] = c }
                    skipped.append(SkippedMount(where: key, reason: "overridden by \(c.rank < existing.rank ? c.declaredBy : existing.declaredBy)",
                                                declaredBy: c.rank < existing.rank ? existing.declaredBy : c.declaredBy))
                } else {
                    chosen[key] = c
                    order.append(key)
                }
            }
            return (chosen, order)
        }

        /// The booted root's mounts, then `ordered`, each applied to the namespace engine as it is
        /// kept: a bind whose source the namespace built so far cannot resolve is skipped with a
        /// warning (the same engine assembles the archive, so plan and archive agree).
        mutating func keepingResolvableBinds(_ ordered: [PlannedMount], after rootMounts: [PlannedMount],
                                             disk: any PlanningDisk) -> [PlannedMount] {
            var final = rootMounts
            let view = NamespaceFileSystem(name: "plan")
            let open = { (m: PlannedMount) throws -> (any FileSystemReader)? in
                guard let index = m.partition else { return nil }
                let fs = try m.offset.map { try disk.fileSystem(partition: index, offset: $0) } ?? disk.fileSystem(partition: index)
                return try fs.map { try BtrfsMounts.view($0, options: m.options) }
            }
            // A partition that cannot be opened is reported by the caller that opens it for the
            // archive (the facade's plan warnings); here it simply provides no paths.
            for m in rootMounts { try? view.apply(m, open: open) }   // reported when the archive opens it (above)
            for m in ordered {
                if m.kind == .bind, let what = m.what, !view.exists(NamespacePath(what)) {
                    warnings.append("\(m.declaredBy): bind source \(what) does not exist; \(m.where) not bound")
                    skipped.append(SkippedMount(where: m.where, reason: "bind source \(what) missing", declaredBy: m.declaredBy))
                    continue
                }
                final.append(m)
                try? view.apply(m, open: open)   // reported when the archive opens it (above)
            }
            return final
        }
    }

    struct Candidate {
        var `where`: String
        var what: String
        var type: String
        var options: [String]
        var source: MountSource
        var declaredBy: String { source.description }
        /// 0: /etc or /run unit, 1: fstab, 2: /usr/lib unit.
        var rank: Int
        var noauto: Bool
    }

    enum Classification {
        case mount(PlannedMount, note: String?)
        case skip(String, warn: Bool)
        case rootItself
    }

    static func classify(_ c: Candidate, key: String, resolver: DeviceResolver, disk: any PlanningDisk) -> Classification {
        guard c.where.hasPrefix("/") else {
            if c.type == "swap" || c.where == "none" || c.where == "swap" { return .skip("swap", warn: false) }
            return .skip("mount point is not an absolute path", warn: true)
        }
        guard !c.where.split(separator: "/").contains("..") else { return .skip("mount point escapes with '..'", warn: true) }
        if key == "/" { return .rootItself }
        if c.noauto { return .skip("noauto", warn: false) }
        let type = c.type.lowercased()
        let optionString = c.options.filter { $0 != "defaults" }.joined(separator: ",")
        if type == "swap" { return .skip("swap", warn: false) }
        if let reason = VirtualFileSystems.skipReason(type: type, what: c.what) { return .skip(reason, warn: false) }
        if c.options.contains("bind") || c.options.contains("rbind") {
            guard c.what.hasPrefix("/") else { return .skip("bind source \(c.what) is not an absolute path", warn: true) }
            return .mount(PlannedMount(where: key, kind: .bind, options: optionString, what: normalise(c.what), source: c.source), note: nil)
        }
        if type == "overlay" {
            let lower = c.options.first { $0.hasPrefix("lowerdir=") }.map { String($0.dropFirst(9)).split(separator: ":").map { normalise(String($0)) } } ?? []
            let upper = c.options.first { $0.hasPrefix("upperdir=") }.map { normalise(String($0.dropFirst(9))) }
            guard !lower.isEmpty else { return .skip("overlay without lowerdir=", warn: true) }
            return .mount(PlannedMount(where: key, kind: .overlay, fstype: "overlay", options: optionString, lower: lower, upper: upper,
                                       source: c.source), note: nil)
        }
        let spec = DeviceSpec(parsing: c.what)
        switch resolver.resolve(spec) {
        case .partition(let index, let note):
            let probed = disk.partitions.first { $0.index == index }?.fsType
            let fstype = (type == "auto" || type.isEmpty) ? (probed ?? "auto") : type
            if probed == nil {
                return .skip("\(c.what) resolves to partition \(index), which holds no filesystem", warn: true)
            }
            return .mount(PlannedMount(where: key, kind: .partition, partition: index, fstype: fstype, options: optionString,
                                       source: c.source), note: note)
        case .notFound(let why):
            return .skip("device \(c.what) not found: \(why)", warn: true)
        case .notAPartition:
            return .skip("\(c.what) (\(c.type)) is not a partition of this disk", warn: true)
        }
    }

    /// Orders mounts by path depth then declaration, while keeping every mount after the mounts
    /// it needs: the mount holding its mount point, and for a bind the mount holding its source.
    static func orderMounts(_ mounts: [PlannedMount]) -> [PlannedMount] {
        var remaining = mounts.enumerated().sorted { a, b in
            let da = depth(a.element.where), db = depth(b.element.where)
            return da != db ? da < db : a.offset < b.offset
        }.map(\.element)
        var result: [PlannedMount] = []
        func needs(_ m: PlannedMount, _ other: PlannedMount) -> Bool {
            if other.where == m.where { return false }
            if isUnder(m.where, other.where) { return true }
            if let what = m.what, isUnder(what, other.where) || what == other.where { return true }
            for l in (m.lower ?? []) + [m.upper].compactMap({ $0 }) where isUnder(l, other.where) || l == other.where { return true }
            return false
        }
        while !remaining.isEmpty {
            let index = remaining.firstIndex { m in !remaining.contains { $0.where != m.where && needs(m, $0) } } ?? 0
            result.append(remaining.remove(at: index))
        }
        return result
    }

    /// Whether `path` exists in the namespace formed by `mounts` (checked through partition
    /// mounts and binds; overlays are assumed to provide their paths).
    static func depth(_ path: String) -> Int { path.split(separator: "/").count }

    static func isUnder(_ path: String, _ parent: String) -> Bool {
        parent == "/" ? path != "/" : path.hasPrefix(parent + "/")
    }

    /// "/a//b/./c/" -> "/a/b/c" (".." is kept, callers reject it).
    static func normalise(_ path: String) -> String {
        let parts = path.split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}

extension UnitLoader {
    func isLoadable(_ name: String) -> Bool {
        if case .unit = load(name) { return true }
        return false
    }
}
