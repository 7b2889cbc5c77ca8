internal import CLibvirt
