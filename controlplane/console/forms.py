from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import validate_password

from tenants.models import User


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), strip=False)

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email

    def clean(self):
        data = super().clean()
        if data.get("email") and data.get("password"):
            try:
                validate_password(data["password"], User(email=data["email"]))
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class LoginForm(AuthenticationForm):
    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()


class TenantForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=40, required=False, help_text="Optional; made from the name if empty.")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, initial="cli")


class DefinitionForm(forms.Form):
    source = forms.CharField(widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false"}), required=False, strip=False)
    upload = forms.FileField(required=False, help_text="or upload a .yaml / .json file (it replaces the text)")
    allow_destructive = forms.BooleanField(required=False, label="Allow destructive changes")

    MAX_BYTES = 1_000_000

    def clean(self):
        data = super().clean()
        upload = data.get("upload")
        if upload and upload.size > self.MAX_BYTES:
            self.add_error("upload", "A definition is at most 1 MB.")
        elif not upload and not (data.get("source") or "").strip():
            self.add_error("source", "Paste a definition or upload a file.")
        return data

    def source_text(self) -> str:
        upload = self.cleaned_data.get("upload")
        if upload:
            return upload.read().decode("utf-8", errors="replace")
        return self.cleaned_data["source"]
