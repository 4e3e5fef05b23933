"""The static catalogue: images, background processes, addresses, users."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --------------------------------------------------------------------------- static catalogue


@dataclass(frozen=True, slots=True)
class Image:
    """A Windows executable with the PE metadata and hashes Sysmon and Defend report."""

    path: str
    description: str
    product: str
    company: str
    file_version: str
    original_file_name: str
    md5: str
    sha1: str
    sha256: str
    imphash: str

    @property
    def name(self) -> str:
        return self.path.rsplit("\\", 1)[-1]

    @property
    def hashes(self) -> str:
        return (
            f"SHA1={self.sha1},MD5={self.md5},SHA256={self.sha256},IMPHASH={self.imphash}".upper()
        )


def _image(
    path: str, description: str, product: str, version: str, company: str = "Microsoft Corporation"
) -> Image:
    h = hashlib.sha256(path.lower().encode()).digest()
    h2 = hashlib.sha512(path.lower().encode()).hexdigest()
    return Image(
        path=path,
        description=description,
        product=product,
        company=company,
        file_version=version,
        original_file_name=path.rsplit("\\", 1)[-1],
        md5=h[:16].hex(),
        sha1=h2[:40],
        sha256=h.hex(),
        imphash=h2[40:72],
    )


_WIN = "Microsoft® Windows® Operating System"
_VS = r"C:\Program Files\Microsoft Visual Studio\2022\Professional"
_OSV = "10.0.19041.1 (WinBuild.160101.0800)"
_ALL_IMAGES: tuple[Image, ...] = (
    _image(r"C:\Windows\System32\svchost.exe", "Host Process for Windows Services", _WIN, _OSV),
    _image(r"C:\Windows\System32\services.exe", "Services and Controller app", _WIN, _OSV),
    _image(r"C:\Windows\System32\lsass.exe", "Local Security Authority Process", _WIN, _OSV),
    _image(r"C:\Windows\explorer.exe", "Windows Explorer", _WIN, _OSV),
    _image(r"C:\Windows\System32\cmd.exe", "Windows Command Processor", _WIN, _OSV),
    _image(r"C:\Windows\System32\conhost.exe", "Console Window Host", _WIN, _OSV),
    _image(
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "Windows PowerShell",
        _WIN,
        _OSV,
    ),
    _image(r"C:\Windows\System32\wbem\WmiPrvSE.exe", "WMI Provider Host", _WIN, _OSV),
    _image(r"C:\Windows\System32\RuntimeBroker.exe", "Runtime Broker", _WIN, _OSV),
    _image(r"C:\Windows\System32\SearchProtocolHost.exe", "Microsoft Windows Search", _WIN, _OSV),
    _image(r"C:\Windows\System32\backgroundTaskHost.exe", "Background Task Host", _WIN, _OSV),
    _image(r"C:\Windows\System32\taskhostw.exe", "Host Process for Windows Tasks", _WIN, _OSV),
    _image(
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        "Google Chrome",
        "Google Chrome",
        "124.0.6367.208",
        "Google LLC",
    ),
    _image(
        r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
        "Microsoft Edge",
        "Microsoft Edge",
        "124.0.2478.97",
    ),
    _image(
        r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
        "Microsoft Outlook",
        "Microsoft Outlook",
        "16.0.17531.20140",
    ),
    _image(
        r"C:\Program Files\Microsoft OneDrive\OneDrive.exe",
        "Microsoft OneDrive",
        "Microsoft OneDrive",
        "24.076.0414.0005",
    ),
    _image(r"C:\Program Files\dotnet\dotnet.exe", ".NET Host", "Microsoft .NET", "8.0.424.16909"),
    _image(
        r"C:\Program Files\Git\cmd\git.exe",
        "Git for Windows",
        "Git",
        "2.45.1.1",
        "The Git Development Community",
    ),
    _image(
        r"C:\Program Files\Microsoft Visual Studio\2022\Professional\Common7\IDE\devenv.exe",
        "Microsoft Visual Studio 2022",
        "Microsoft® Visual Studio®",
        "17.9.34728.123",
    ),
    _image(
        _VS + r"\MSBuild\Current\Bin\amd64\MSBuildTaskHost.exe",
        "MSBuildTaskHost.exe",
        "Microsoft® Build Tools®",
        "17.9.8.16306",
    ),
    _image(
        r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\MSBuild.exe",
        "MSBuild.exe",
        "Microsoft® .NET Framework",
        "4.8.4084.0 built by: NET48REL1",
    ),
    _image(
        _VS + r"\MSBuild\Current\Bin\amd64\MSBuild.exe",
        "MSBuild.exe",
        "Microsoft® Build Tools®",
        "17.9.8.16306",
    ),
    _image(
        r"C:\Program Files\Windows Defender\MsMpEng.exe",
        "Antimalware Service Executable",
        _WIN,
        "4.18.24030.9",
    ),
)
IMAGES: dict[str, Image] = {i.name.lower(): i for i in _ALL_IMAGES if i.name != "MSBuild.exe"}
MSBUILD_FRAMEWORK = next(
    i for i in _ALL_IMAGES if i.name == "MSBuild.exe" and "Framework64" in i.path
)
MSBUILD_VS = next(i for i in _ALL_IMAGES if i.name == "MSBuild.exe" and "Visual Studio" in i.path)

# name -> (parent name, base command line, weight as a background process start)
_BG_STARTS: list[tuple[str, str, str]] = [
    ("svchost.exe", "services.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
    (
        "svchost.exe",
        "services.exe",
        "C:\\Windows\\System32\\svchost.exe -k LocalServiceNetworkRestricted -p",
    ),
    ("chrome.exe", "explorer.exe", '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"'),
    (
        "chrome.exe",
        "chrome.exe",
        '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer '
        "--lang=en-US --js-flags=--ms-user-locale= --device-scale-factor=1 --num-raster-threads=4",
    ),
    (
        "msedge.exe",
        "explorer.exe",
        '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"',
    ),
    (
        "powershell.exe",
        "explorer.exe",
        '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoLogo',
    ),
    (
        "powershell.exe",
        "svchost.exe",
        "powershell.exe -ExecutionPolicy Bypass -NoProfile -File "
        "C:\\ProgramData\\Intune\\Scripts\\check.ps1",
    ),
    ("cmd.exe", "explorer.exe", '"C:\\Windows\\system32\\cmd.exe"'),
    ("conhost.exe", "cmd.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1"),
    ("RuntimeBroker.exe", "svchost.exe", "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding"),
    (
        "SearchProtocolHost.exe",
        "svchost.exe",
        '"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe3_',
    ),
    (
        "backgroundTaskHost.exe",
        "svchost.exe",
        '"C:\\Windows\\system32\\backgroundTaskHost.exe" '
        "-ServerName:BackgroundTaskHost.WebAccountProvider",
    ),
    ("taskhostw.exe", "svchost.exe", "taskhostw.exe Install $(Arg0)"),
    (
        "WmiPrvSE.exe",
        "svchost.exe",
        "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
    ),
    (
        "OUTLOOK.EXE",
        "explorer.exe",
        '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"',
    ),
    (
        "OneDrive.exe",
        "explorer.exe",
        '"C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe" /background',
    ),
    ("git.exe", "cmd.exe", "git fetch --all --prune"),
    # dotnet build runs MSBuild in process (MSBuild.dll): it mentions MSBuild, is not MSBuild.exe.
    (
        "dotnet.exe",
        "cmd.exe",
        '"C:\\Program Files\\dotnet\\dotnet.exe" '
        '"C:\\Program Files\\dotnet\\sdk\\8.0.204\\MSBuild.dll" '
        "-maxcpucount -verbosity:m -restore -consoleloggerparameters:Summary",
    ),
    (
        "MSBuildTaskHost.exe",
        "devenv.exe",
        f'"{_VS}\\MSBuild\\Current\\Bin\\amd64\\MSBuildTaskHost.exe" /nologo /nodemode:2',
    ),
]
_LONG_LIVED = [
    ("services.exe", "C:\\Windows\\system32\\services.exe"),
    ("lsass.exe", "C:\\Windows\\system32\\lsass.exe"),
    ("explorer.exe", "C:\\Windows\\Explorer.EXE"),
    ("svchost.exe", "C:\\Windows\\system32\\svchost.exe -k NetworkService -p -s Dnscache"),
    ("svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s wuauserv"),
    ("chrome.exe", '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"'),
    (
        "msedge.exe",
        '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" --no-startup-window',
    ),
    ("OUTLOOK.EXE", '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"'),
    ("OneDrive.exe", '"C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe" /background'),
    ("MsMpEng.exe", '"C:\\Program Files\\Windows Defender\\MsMpEng.exe"'),
    (
        "devenv.exe",
        f'"{_VS}\\Common7\\IDE\\devenv.exe"',
    ),
    ("powershell.exe", '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"'),
]
_EXTERNAL_IPS = [
    "142.250.185.78", "142.250.74.110", "172.217.16.142", "13.107.42.14", "13.107.6.156",
    "20.190.159.4", "20.190.160.20", "40.126.31.73", "52.113.194.132", "52.96.165.146",
    "52.182.143.212", "104.208.16.94", "23.48.164.210", "23.62.228.91", "151.101.1.69",
    "151.101.65.140", "140.82.121.4", "140.82.114.25", "185.199.108.133", "104.16.132.229",
    "204.79.197.200", "13.69.109.131", "20.42.65.92", "35.186.224.25", "34.120.208.123",
    "2606:4700::6810:84e5", "2a00:1450:4001:82b::200e", "2620:1ec:21::14",
]  # fmt: skip
_EXTERNAL_NAMES = [
    "www.google.com", "clients2.google.com", "login.microsoftonline.com", "outlook.office365.com",
    "teams.microsoft.com", "settings-win.data.microsoft.com", "github.com", "api.github.com",
    "nuget.org", "api.nuget.org", "onedrive.live.com", "ctldl.windowsupdate.com",
    "self.events.data.microsoft.com", "edge.microsoft.com", "pkgs.dev.azure.com",
]  # fmt: skip
_PORTS = [(443, "https"), (443, "https"), (443, "https"), (80, "http"), (53, "domain"),
          (88, "kerberos"), (445, "microsoft-ds"), (135, "epmap"), (389, "ldap")]  # fmt: skip
_FILE_DIRS = [
    "C:\\Users\\{u}\\AppData\\Local\\Temp\\",
    "C:\\Users\\{u}\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Cache\\Cache_Data\\",
    "C:\\Windows\\Prefetch\\",
    "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History\\Service\\",
    "C:\\Users\\{u}\\source\\repos\\Contoso.Billing\\src\\Contoso.Billing.Api\\obj\\Debug\\net8.0\\",
]
_REG_KEYS = [
    "HKU\\S-1-5-21-{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs\\",
    "HKLM\\System\\CurrentControlSet\\Services\\bam\\State\\UserSettings\\S-1-5-21-{sid}\\",
    "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Signature Updates\\",
]
_DLLS = [
    "C:\\Windows\\System32\\ntdll.dll", "C:\\Windows\\System32\\kernel32.dll",
    "C:\\Windows\\System32\\KernelBase.dll", "C:\\Windows\\System32\\advapi32.dll",
    "C:\\Windows\\System32\\combase.dll", "C:\\Windows\\System32\\rpcrt4.dll",
    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\clr.dll",
    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\mscoreei.dll",
    _VS + "\\MSBuild\\Current\\Bin\\Microsoft.Build.dll",
]  # fmt: skip
_USERS = ["jdoe", "asmith", "mgarcia", "lchen", "pnovak", "okafor", "sbeavers", "pgustavo", "build"]
# Realistic argument text used to bring records to the requested size.
_PAD_ARGS = (
    " /p:Configuration=Release /p:Platform=x64 /p:TreatWarningsAsErrors=false /nologo"
    " /verbosity:minimal /m:4 /restore /p:RestorePackagesConfig=true /p:DeployOnBuild=false"
    " /p:OutDir=C:\\agent\\_work\\12\\b\\bin\\ /bl:C:\\agent\\_work\\12\\a\\msbuild.binlog"
    " --field-trial-handle=1960,i,9403726459129387460,1539288227913094385,262144"
    " --variations-seed-version=20240513-180105.470000 --enable-features=msEdgeSidebar"
    " --disable-features=SpareRendererForSitePerProcess --mojo-platform-channel-handle=2236"
    " -EncodedCommand SQBuAHYAbwBrAGUALQBXAGUAYgBSAGUAcQB1AGUAcwB0ACAALQBVAHMAZQBCAGEAcwBpAGMA"
    "UABhAHIAcwBpAG4AZwAgAC0AVQByAGkAIABoAHQAdABwAHMAOgAvAC8AaQBuAHQAdQBuAGUALgBjAG8AbgB0AG8A"
    "cwBvAC4AYwBvAG0ALwBoAGUAYQBsAHQAaAAgAHwAIABPAHUAdAAtAE4AdQBsAGwA"
) * 8


def _pad(n: int) -> str:
    """Argument text of about n characters (ending on a word boundary)."""
    if n <= 0:
        return ""
    n = min(n, len(_PAD_ARGS))
    cut = _PAD_ARGS.rfind(" ", 0, n + 1)
    return _PAD_ARGS[:cut] if cut > 0 else ""
